"""In-place weight loading inside vLLM's workers (`worker_extension_cls`), on CPU and GPU alike.

The engine runs in its own process; `collective_rpc` carries only plain data across (a tensor
argument above vLLM's zero-copy threshold arrives broken), so tensors travel as raw bytes with
their dtype and shape. Loading goes through the model runner's layer-wise reload, which maps
Hugging Face names to vLLM's, re-packs the layers the CPU backend repacks, and clears the
worker's encoder cache. A plain `model.load_weights` silently does nothing useful on CPU.
"""

from __future__ import annotations

import torch

# (name, dtype name as in torch, shape, raw little-endian bytes)
RawTensor = tuple[str, str, list[int], bytes]


def to_raw(name: str, tensor: torch.Tensor) -> RawTensor:
    flat = tensor.detach().to("cpu").contiguous()
    return name, str(flat.dtype).removeprefix("torch."), list(flat.shape), flat.view(torch.uint8).numpy().tobytes()


def from_raw(raw: RawTensor) -> tuple[str, torch.Tensor]:
    name, dtype, shape, data = raw
    return name, torch.frombuffer(bytearray(data), dtype=torch.uint8).view(getattr(torch, dtype)).reshape(shape)


class WeightReloadExtension:
    """Mixed into vLLM's worker: its methods are callable through `collective_rpc`."""

    def reload_raw_weights(self, tensors: list[RawTensor]) -> int:
        self.model_runner.reload_weights(weights_iterator=[from_raw(raw) for raw in tensors])
        return len(tensors)
