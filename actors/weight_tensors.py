"""A published weight update's raw tensors as torch tensors, for loading into an engine."""

from __future__ import annotations

import warnings

import torch

from wire.weights import RawTensor, WeightUpdate

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def as_torch(tensor: RawTensor) -> torch.Tensor:
    """A CPU tensor over the received bytes themselves, no copy: they are this process's own
    received message, and engines only read them while loading (each copies into its
    parameters). Without the copy a 100M-parameter push took 0.45 s instead of 0.83 s (BENCHMARKS.md)."""
    dtype = TORCH_DTYPES[tensor.dtype]
    if not tensor.nbytes:
        return torch.empty(tensor.shape, dtype=dtype)
    with warnings.catch_warnings():
        # Received frames are flagged read-only; torch warns that it cannot enforce that.
        warnings.filterwarnings("ignore", message="The given buffer is not writable")
        flat = torch.frombuffer(tensor.data, dtype=torch.uint8)
    return flat.view(dtype).reshape(tensor.shape)


def named_tensors(update: WeightUpdate) -> list[tuple[str, torch.Tensor]]:
    return [(t.name, as_torch(t)) for t in update.tensors]
