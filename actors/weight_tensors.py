"""A published weight update's raw tensors as torch tensors, for loading into an engine."""

from __future__ import annotations

import torch

from wire.weights import RawTensor, WeightUpdate

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def as_torch(tensor: RawTensor) -> torch.Tensor:
    """A CPU tensor over a copy of the raw bytes (received frames are read-only)."""
    dtype = TORCH_DTYPES[tensor.dtype]
    if not tensor.nbytes:
        return torch.empty(tensor.shape, dtype=dtype)
    return torch.frombuffer(bytearray(tensor.data), dtype=torch.uint8).view(dtype).reshape(tensor.shape)


def named_tensors(update: WeightUpdate) -> list[tuple[str, torch.Tensor]]:
    return [(t.name, as_torch(t)) for t in update.tensors]
