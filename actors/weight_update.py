"""WeightUpdate: a new policy version pushed by the learner (the actors own this schema).

On the wire (ZeroMQ multipart): frame 0 is a msgpack header {schema, version, tensors: [{name,
dtype, shape}]}, then one raw buffer per tensor, in header order. Nothing is pickled.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wire.buffers import MalformedMessage, pack, require, unpack

SCHEMA_VERSION = 1
WHAT = "WeightUpdate"
# Tensor dtypes a weight may travel as.
TENSOR_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class WeightSource:
    """Where an actor gets new weights: the backend and the endpoint(s) to connect to."""

    backend: str
    endpoints: tuple[str, ...]


@dataclass(frozen=True)
class WeightUpdate:
    version: int
    tensors: dict[str, torch.Tensor]


def wire_dtype(name: str, tensor: torch.Tensor) -> str:
    """The name `tensor`'s dtype travels under, if it may travel as a weight at all."""
    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype not in TENSOR_DTYPES:
        raise TypeError(f"{name}: dtype {dtype} cannot travel as a weight")
    return dtype


def encode_weight_update(version: int, tensors: dict[str, torch.Tensor]) -> list[bytes | memoryview]:
    header = {"schema": SCHEMA_VERSION, "version": version, "tensors": []}
    buffers = []
    for name, tensor in tensors.items():
        dtype = wire_dtype(name, tensor)
        header["tensors"].append({"name": name, "dtype": dtype, "shape": list(tensor.shape)})
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        buffers.append(memoryview(flat.view(torch.uint8).numpy()))
    return [pack(header), *buffers]


def decode_weight_update(frames: list[bytes]) -> WeightUpdate:
    if not frames:
        raise MalformedMessage(f"empty {WHAT}")
    header = unpack(frames[0], WHAT)
    if header.get("schema") != SCHEMA_VERSION:
        raise MalformedMessage(f"{WHAT} schema {header.get('schema')!r}, expected {SCHEMA_VERSION}")
    version = require(header, "version", int, WHAT)
    specs = require(header, "tensors", list, WHAT)
    if len(specs) != len(frames) - 1:
        raise MalformedMessage(f"{WHAT} header names {len(specs)} tensors but {len(frames) - 1} buffers follow")
    tensors = {}
    for spec, buffer in zip(specs, frames[1:]):
        name, dtype, shape = _tensor_spec(spec)
        expected = _numel(shape) * torch.empty((), dtype=dtype).element_size()
        if len(buffer) != expected:
            raise MalformedMessage(f"{WHAT} tensor {name!r}: {len(buffer)} bytes, expected {expected}")
        raw = torch.frombuffer(bytearray(buffer), dtype=torch.uint8) if expected else torch.empty(0, dtype=torch.uint8)
        tensors[name] = raw.view(dtype).reshape(shape)
    return WeightUpdate(version=version, tensors=tensors)


def _tensor_spec(spec) -> tuple[str, torch.dtype, list[int]]:
    if not isinstance(spec, dict):
        raise MalformedMessage(f"{WHAT} tensor spec is not a map")
    name = require(spec, "name", str, WHAT)
    dtype = require(spec, "dtype", str, WHAT)
    shape = require(spec, "shape", list, WHAT)
    if dtype not in TENSOR_DTYPES:
        raise MalformedMessage(f"{WHAT} tensor {name!r} has dtype {dtype!r}")
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise MalformedMessage(f"{WHAT} tensor {name!r} has shape {shape!r}")
    return name, TENSOR_DTYPES[dtype], shape


def _numel(shape: list[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count
