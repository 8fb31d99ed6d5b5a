"""WeightUpdate: a new policy version pushed by the learner to the rollout actors.

On the wire (ZeroMQ multipart): frame 0 is a msgpack header {schema, version, tensors: [{name,
dtype, shape}]}, then one raw buffer per tensor, in header order. Nothing is pickled.

The tensors stay raw bytes here (this layer imports no tensor framework): the learner turns its
torch tensors into `RawTensor`s, an engine turns them back (`actors.weight_tensors`).
"""

from __future__ import annotations

from dataclasses import dataclass

from wire.buffers import MalformedMessage, pack, require, unpack

SCHEMA_VERSION = 1
WHAT = "WeightUpdate"
# ZeroMQ topics (each update's first frame): a published version goes to every subscriber under
# UPDATE_TOPIC; the newest one is sent again to a subscriber that just joined, under the topic it
# alone subscribed to (CATCH_UP_PREFIX + a random name), so joining costs the others nothing.
UPDATE_TOPIC = b"update"
CATCH_UP_PREFIX = b"catch-up/"
# Bytes per decoded entry a weight header (or a broadcast Round) may have: its entries are short
# names, dtypes and dimensions; 4 still bounds a frame's decoded size to ~15x its own.
HEADER_BYTES_PER_ITEM = 4
# Element sizes of the dtypes a weight may travel as.
WEIGHT_DTYPES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class WeightSource:
    """Where an actor gets new weights: the backend and the endpoint(s) to connect to."""

    backend: str
    endpoints: tuple[str, ...]


@dataclass(frozen=True)
class RawTensor:
    name: str
    dtype: str  # one of WEIGHT_DTYPES
    shape: tuple[int, ...]
    data: bytes | memoryview  # row-major, `nbytes` long

    @property
    def nbytes(self) -> int:
        return num_elements(self.shape) * WEIGHT_DTYPES[self.dtype]


@dataclass(frozen=True)
class WeightUpdate:
    version: int
    tensors: tuple[RawTensor, ...]


def num_elements(shape: tuple[int, ...] | list[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def encode_weight_update(update: WeightUpdate) -> list[bytes | memoryview]:
    header = {
        "schema": SCHEMA_VERSION,
        "version": update.version,
        "tensors": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in update.tensors],
    }
    return [pack(header), *(t.data for t in update.tensors)]


def decode_weight_header(frame: bytes | memoryview) -> tuple[int, list[RawTensor]]:
    """Frame 0 alone: the version, and each tensor's name, dtype and shape (its data still empty)."""
    # Names, dtypes and shapes: a 72B model's 963 tensors take ~14 bytes per entry.
    header = unpack(frame, WHAT, bytes_per_item=HEADER_BYTES_PER_ITEM)
    if header.get("schema") != SCHEMA_VERSION:
        raise MalformedMessage(f"{WHAT} schema {header.get('schema')!r}, expected {SCHEMA_VERSION}")
    version = require(header, "version", int, WHAT)
    specs = require(header, "tensors", list, WHAT)
    return version, [RawTensor(*_tensor_spec(spec), data=b"") for spec in specs]


def decode_weight_update(frames: list[bytes]) -> WeightUpdate:
    if not frames:
        raise MalformedMessage(f"empty {WHAT}")
    version, specs = decode_weight_header(frames[0])
    if len(specs) != len(frames) - 1:
        raise MalformedMessage(f"{WHAT} header names {len(specs)} tensors but {len(frames) - 1} buffers follow")
    tensors = []
    for spec, buffer in zip(specs, frames[1:]):
        if len(buffer) != spec.nbytes:
            raise MalformedMessage(f"{WHAT} tensor {spec.name!r}: {len(buffer)} bytes, expected {spec.nbytes}")
        tensors.append(RawTensor(spec.name, spec.dtype, spec.shape, data=buffer))
    return WeightUpdate(version=version, tensors=tuple(tensors))


def _tensor_spec(spec) -> tuple[str, str, tuple[int, ...]]:
    if not isinstance(spec, dict):
        raise MalformedMessage(f"{WHAT} tensor spec is not a map")
    name = require(spec, "name", str, WHAT)
    dtype = require(spec, "dtype", str, WHAT)
    shape = require(spec, "shape", list, WHAT)
    if dtype not in WEIGHT_DTYPES:
        raise MalformedMessage(f"{WHAT} tensor {name!r} has dtype {dtype!r}")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise MalformedMessage(f"{WHAT} tensor {name!r} has shape {shape!r}")
    return name, dtype, tuple(shape)
