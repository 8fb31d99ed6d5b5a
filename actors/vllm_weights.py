"""Weight-transfer backends of ours inside vLLM's workers, registered with vLLM's weight-transfer API.

The vLLM caption engine always updates through that API (`start_weight_update`, `update_weights`,
`finish_weight_update(weight_version=...)`), whatever the transport; the backend is chosen by
`learner.weight_sync.backend`:
- "frames" (weight sync "zmq"): the update the learner published (`wire.weights`: a msgpack
  header and raw buffers) arrives in a shared-memory file the actor wrote (`actors.shared_update`;
  inline in the RPC where shared memory has no room), decoded and checked here. Tensors
  themselves cannot cross: above vLLM's zero-copy threshold a tensor argument arrives broken.
- "gloo": the learner broadcasts each tensor over a gloo group that every engine worker joined,
  tensor by tensor in the order the update info names them. It is vLLM's NCCL backend (used for
  weight sync "nccl" on GPUs) over a CPU collective: the same rendezvous fields, update info and
  loading, so the broadcast protocol runs for real where NCCL cannot.
Both load through vLLM's layer-wise reload (as its NCCL backend does): it maps Hugging Face names
to vLLM's and re-packs the layers the CPU backend repacks. A plain `model.load_weights` silently
does nothing useful on CPU.

`register` is a `vllm.general_plugins` entry point (pyproject.toml): vLLM runs it in each of its
processes, so the backends exist wherever a worker is built.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from vllm.distributed.weight_transfer.base import (
    WeightTransferEngine,
    WeightTransferInitInfo,
    WeightTransferUpdateInfo,
)

from actors.shared_update import SharedUpdate, read_shared_update
from actors.weight_tensors import TORCH_DTYPES, named_tensors
from transport.gloo import GlooGroup
from wire.weights import decode_weight_update

BACKENDS = {"frames": "FramesWeightTransferEngine", "gloo": "GlooWeightTransferEngine"}
_LAYERWISE_LOGGER = "vllm.model_executor.model_loader.reload.layerwise"


def register() -> None:
    """The plugin entry point: name our backends in vLLM's registry."""
    from vllm.distributed.weight_transfer import WeightTransferEngineFactory

    for name, class_name in BACKENDS.items():
        try:
            WeightTransferEngineFactory.register_engine(name, __name__, class_name)
        except ValueError:  # registered already: the plugin ran before in this process
            pass
    # The learner sends only the weights it trains (not a frozen vision tower); vLLM warns
    # "Failed to load weights" for every layer left out, on every update, though it keeps their
    # weights as they were, which is what we want (the conformance tests check updates exactly).
    logging.getLogger(_LAYERWISE_LOGGER).setLevel(logging.ERROR)


@dataclass
class NoInitInfo(WeightTransferInitInfo):
    """The frames backend needs no channel set up: its updates carry their own bytes."""


@dataclass
class FramesUpdateInfo(WeightTransferUpdateInfo):
    """Either a shared-memory file's path and the update's header (`actors.shared_update`), or,
    where shared memory had no room, the update's frames themselves."""

    path: str = ""
    header: bytes = b""
    frames: list[bytes] | None = None


@dataclass(kw_only=True)
class GlooInitInfo(WeightTransferInitInfo):
    """Where the learner's gloo group meets, and this engine's place in it (as vLLM's NCCL info)."""

    master_address: str
    master_port: int
    rank_offset: int  # the group rank of this engine's worker 0; the learner is rank 0
    world_size: int
    timeout_s: float = 300.0


@dataclass
class BroadcastUpdateInfo(WeightTransferUpdateInfo):
    """The tensors about to be broadcast, in order (the fields of vLLM's NCCL update info)."""

    names: list[str]
    dtype_names: list[str]
    shapes: list[list[int]]


class _LayerwiseReload(WeightTransferEngine):
    """Checkpoint-format weights loaded through vLLM's layer-wise reload."""

    def start_weight_update(self) -> None:
        from vllm.model_executor.model_loader.reload import initialize_layerwise_reload

        initialize_layerwise_reload(self.model)

    def finish_weight_update(self) -> None:
        from vllm.model_executor.model_loader.reload import finalize_layerwise_reload

        finalize_layerwise_reload(self.model, self.model_config)

    def update_weights(self, update_info: dict) -> None:
        # The base class ends with `torch.accelerator.synchronize()`, which raises where there is
        # no accelerator; loading here is synchronous on CPU.
        self.receive_weights(self.parse_update_info(update_info))
        if torch.cuda.is_available():
            torch.cuda.synchronize()


class FramesWeightTransferEngine(_LayerwiseReload):
    init_info_cls = NoInitInfo
    update_info_cls = FramesUpdateInfo

    def init_transfer_engine(self, init_info: NoInitInfo) -> None:
        pass

    def receive_weights(self, update_info: FramesUpdateInfo) -> None:
        if update_info.frames is not None:
            update = decode_weight_update(update_info.frames)
        else:
            update = read_shared_update(SharedUpdate(update_info.path, update_info.header))
        self.model.load_weights(named_tensors(update))

    def shutdown(self) -> None:
        pass


class GlooWeightTransferEngine(_LayerwiseReload):
    init_info_cls = GlooInitInfo
    update_info_cls = BroadcastUpdateInfo

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.group = None

    def init_transfer_engine(self, init_info: GlooInitInfo) -> None:
        parallel = self.parallel_config
        rank = init_info.rank_offset + parallel.data_parallel_index * parallel.world_size + parallel.rank
        self.group = GlooGroup.join(
            init_info.master_address, init_info.master_port, rank, init_info.world_size, init_info.timeout_s
        )

    def receive_weights(self, update_info: BroadcastUpdateInfo) -> None:
        if self.group is None:
            raise RuntimeError("gloo weight transfer used before init_weight_transfer_engine")
        for name, dtype_name, shape in zip(update_info.names, update_info.dtype_names, update_info.shapes):
            tensor = torch.empty(shape, dtype=TORCH_DTYPES[dtype_name])
            self.group.broadcast(tensor)
            self.model.load_weights([(name, tensor)])

    def shutdown(self) -> None:
        self.group = None
