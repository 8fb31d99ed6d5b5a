"""DeepSpeed setup for one learner rank (CPU via gloo, GPU via NCCL)."""

from __future__ import annotations

import datetime
import logging
import math
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from configs.schema import LearnerConfig
from transport.gloo import listening_socket, local_address_towards, rendezvous_store

log = logging.getLogger(__name__)
# The process group's store: alive as long as the process.
_held: list = []
# DeepSpeed compiles its CPU shared-memory op on a machine's first learner start, under a lock
# file; a process killed while compiling leaves the lock behind, and every later rank waits on it
# forever without a word (seen after a killed test). The compile takes well under a minute.
STALE_BUILD_LOCK_S = 600.0


@dataclass(frozen=True)
class RankInfo:
    rank: int
    world_size: int
    master_addr: str
    master_port: int


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def init_process_group(info: RankInfo) -> None:
    """Join the learner's process group. Ray starts each rank without a launcher, so the
    variables a launcher would set are set here (else DeepSpeed looks for MPI)."""
    import deepspeed

    os.environ.update(
        RANK=str(info.rank),
        # Ray gives each rank its own CUDA_VISIBLE_DEVICES, so its device is always local 0.
        LOCAL_RANK="0",
        WORLD_SIZE=str(info.world_size),
        MASTER_ADDR=info.master_addr,
        MASTER_PORT=str(info.master_port),
    )
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "gloo" and "GLOO_SOCKET_IFNAME" not in os.environ:
        # Else gloo binds where the host name resolves, often loopback: ranks on other nodes
        # could not reach it.
        os.environ["GLOO_SOCKET_IFNAME"] = interface_towards(info.master_addr, info.master_port)
    # The group's store, served by rank 0 on the address it gave the others, not on every
    # interface (torch's own rendezvous would); DeepSpeed then takes the group as it is.
    if not torch.distributed.is_initialized():  # a process's group is made once, then reused
        timeout = datetime.timedelta(minutes=30)
        listener = listening_socket(info.master_addr, info.master_port) if info.rank == 0 else None
        store = rendezvous_store(info.master_addr, info.master_port, info.world_size, timeout, listener)
        torch.distributed.init_process_group(
            backend, store=store, rank=info.rank, world_size=info.world_size, timeout=timeout
        )
        _held.append(store)
    with clearing_stale_build_lock(enabled=backend == "gloo"):
        deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False)


def leave_process_group() -> None:
    """Leave the learner's process group once every rank is done with it. A process that exits
    with the group still alive can abort in gloo's teardown (seen on the second of two ranks);
    the barrier keeps rank 0's store up until the last rank has left."""
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    _held.clear()


@contextmanager
def clearing_stale_build_lock(enabled: bool, every_s: float = 10.0):
    """While the body runs, remove DeepSpeed's CPU op build lock as soon as it is stale: a lock
    still fresh when the rank starts may be a compile that dies later."""
    stop = threading.Event()
    watcher = threading.Thread(target=_clear_until, args=(stop, every_s), daemon=True)
    if enabled:
        clear_stale_build_lock()
        watcher.start()
    try:
        yield
    finally:
        stop.set()


def _clear_until(stop: threading.Event, every_s: float) -> None:
    while not stop.wait(every_s):
        clear_stale_build_lock()


def clear_stale_build_lock(stale_after_s: float = STALE_BUILD_LOCK_S) -> Path | None:
    """Remove the lock of DeepSpeed's CPU op build if it is older than any build; the path removed, if any."""
    from deepspeed.accelerator import get_accelerator
    from torch.utils.cpp_extension import _get_build_directory

    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    if builder is None:
        return None
    lock = Path(_get_build_directory(builder.name, verbose=False)) / "lock"
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return None
    if age < stale_after_s:
        return None
    log.warning("removing %s, left %.0f s ago by a process killed while compiling DeepSpeed's CPU op", lock, age)
    lock.unlink(missing_ok=True)
    return lock


def interface_towards(address: str, port: int) -> str:
    """The name of this host's network interface on the route to `address`."""
    import psutil

    local = local_address_towards(address, port)
    for name, addresses in psutil.net_if_addrs().items():
        if any(a.address == local for a in addresses):
            return name
    raise RuntimeError(
        f"no network interface holds {local}, the address on the route to {address}; set GLOO_SOCKET_IFNAME"
    )


def micro_batches_per_step(config: LearnerConfig, world_size: int) -> int:
    """The forward and backward passes a rank makes per step: its groups, `groups_per_micro_batch` at a time."""
    return math.ceil(config.groups_per_step // world_size / config.groups_per_micro_batch)


def deepspeed_config(config: LearnerConfig, micro_batches: int, world_size: int) -> dict:
    """`micro_batches` micro-batches (of one or more caption groups) per rank make one update; the
    learner scales each loss itself (learner/update.py), so DeepSpeed's batch sizes only count them."""
    return {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": micro_batches,
        "train_batch_size": micro_batches * world_size,
        "gradient_clipping": config.grad_clip,
        "zero_optimization": {"stage": config.zero_stage},
        "bf16": {"enabled": config.dtype == "bf16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def build_engine(model: torch.nn.Module, config: LearnerConfig, micro_batches: int, world_size: int):
    import deepspeed

    trainable = [p for p in model.parameters() if p.requires_grad]
    # torch's AdamW avoids JIT-building DeepSpeed's fused Adam kernels (a minute on a CPU).
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    engine, *_ = deepspeed.initialize(
        model=model, optimizer=optimizer, config=deepspeed_config(config, micro_batches, world_size)
    )
    return engine


def gathered_weights(engine, trainable_only: bool) -> dict[str, torch.Tensor]:
    """Full (unpartitioned) copies of the policy's weights, on CPU; a collective under ZeRO-3."""
    import deepspeed

    named = [(n, p) for n, p in engine.module.named_parameters() if p.requires_grad or not trainable_only]
    params = [p for _, p in named]
    enabled = engine.zero_optimization_stage() == 3
    with deepspeed.zero.GatheredParameters(params, enabled=enabled):
        return {name: p.detach().to("cpu", copy=True) for name, p in named}
