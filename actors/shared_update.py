"""A weight update handed from the rollout actor to its vLLM engine process through shared memory.

vLLM's async engine runs its model in a process of its own, and its RPC carries arguments as
msgpack: an update sent as bytes was copied into the request, copied again out of it, and crossed
a socket in between. Here the actor writes the received tensors once into a file in shared
memory (/dev/shm), and the engine's worker maps that file and loads from views of it: the
frames' bytes are copied once on their way to the loader, which then copies them into the
parameters as any load does. Only the path and the update's header cross vLLM's RPC.

Each tensor starts at a multiple of `ALIGNMENT` bytes, so that a view of it may take any dtype.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass

from wire.weights import WeightUpdate, decode_weight_header, decode_weight_update, encode_weight_update

ALIGNMENT = 64
SHARED_MEMORY_DIR = "/dev/shm"
FILE_PREFIX = "caption-weights-"


@dataclass(frozen=True)
class SharedUpdate:
    """What crosses vLLM's RPC: where the tensors lie, and the update's header (wire.weights)."""

    path: str
    header: bytes


def offsets(sizes: list[int]) -> tuple[list[int], int]:
    """Where each tensor of these byte sizes starts, in order, and the file's whole size."""
    starts, end = [], 0
    for size in sizes:
        start = -(-end // ALIGNMENT) * ALIGNMENT
        starts.append(start)
        end = start + size
    return starts, end


def _directory() -> str:
    return SHARED_MEMORY_DIR if os.access(SHARED_MEMORY_DIR, os.W_OK) else tempfile.gettempdir()


@contextmanager
def shared_update(update: WeightUpdate):
    """The update written into a shared-memory file, for as long as the block runs; the file is
    removed after it. Raises OSError when shared memory has no room (a container's small /dev/shm)."""
    header, *buffers = encode_weight_update(update)
    starts, size = offsets([t.nbytes for t in update.tensors])
    fd, path = tempfile.mkstemp(prefix=f"{FILE_PREFIX}{os.getpid()}-", dir=_directory())
    try:
        with os.fdopen(fd, "wb", buffering=0) as file:
            for start, buffer in zip(starts, buffers):
                file.seek(start)
                file.write(buffer)
            file.truncate(size)
        yield SharedUpdate(path, bytes(header))
    finally:
        os.unlink(path)


def read_shared_update(shared: SharedUpdate) -> WeightUpdate:
    """The update as views of the mapped file (read-only), checked as a received one is."""
    _, specs = decode_weight_header(shared.header)
    starts, size = offsets([t.nbytes for t in specs])
    with open(shared.path, "rb") as file:
        held = os.fstat(file.fileno()).st_size
        if held != size:
            raise ValueError(f"weight update file {shared.path} holds {held} bytes, expected {size}")
        mapped = memoryview(mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ)) if size else memoryview(b"")
    views = [mapped[start : start + t.nbytes] for start, t in zip(starts, specs)]
    return decode_weight_update([shared.header, *views])
