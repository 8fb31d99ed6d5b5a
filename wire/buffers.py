"""Typed raw buffers inside msgpack: how arrays cross process boundaries.

An array travels as a map {"dtype": str, "shape": [int, ...], "data": bytes}: no pickling, no
Python lists of numbers. Decoding checks the dtype against the one the consumer expects and the
byte count against the shape, so a malformed frame fails here, at the edge, with a reason.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

# Dtypes allowed on the wire; anything else is rejected before numpy sees it.
WIRE_DTYPES = frozenset({"int32", "int64", "float32", "float16", "bfloat16", "uint8"})


class MalformedMessage(ValueError):
    """A frame that does not decode to the expected message; the text says why."""


def pack_array(array: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(array)
    dtype = str(array.dtype)
    if dtype not in WIRE_DTYPES:
        raise TypeError(f"dtype {dtype} cannot travel on the wire (allowed: {sorted(WIRE_DTYPES)})")
    return {"dtype": dtype, "shape": list(array.shape), "data": array.tobytes()}


def unpack_array(obj: Any, name: str, dtype: str, ndim: int | None = None) -> np.ndarray:
    """Decode one typed buffer, checking it is `dtype` with `ndim` dimensions."""
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "data"}:
        raise MalformedMessage(f"field {name!r} is not a typed buffer")
    if obj["dtype"] != dtype:
        raise MalformedMessage(f"field {name!r} has dtype {obj['dtype']!r}, expected {dtype!r}")
    shape = obj["shape"]
    # type(), not isinstance: a boolean is an int to Python, and True passed for a dimension.
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise MalformedMessage(f"field {name!r} has an invalid shape {excerpt(repr(shape))}")
    if ndim is not None and len(shape) != ndim:
        raise MalformedMessage(f"field {name!r} has {len(shape)} dimensions, expected {ndim}")
    data = obj["data"]
    if not isinstance(data, bytes):
        raise MalformedMessage(f"field {name!r} carries no bytes")
    itemsize = np.dtype(dtype).itemsize
    if len(data) != math.prod(shape) * itemsize:
        raise MalformedMessage(f"field {name!r}: {len(data)} bytes do not fill shape {shape} of {dtype}")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def pack(message: dict[str, Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


# A frame's decoded containers may hold this many entries in all, plus one per BYTES_PER_ITEM of
# the frame (a group holds a few dozen; headers of tensor names and shapes pass their own figure). Each
# entry is a Python object of 30-60 bytes however few bytes encoded it (an empty list is one
# byte), so without a count a frame of nested empty lists decodes to ~60x its size.
BASE_ITEMS = 1024
BYTES_PER_ITEM = 16


class _TooManyItems(Exception):
    pass


def unpack(frame: bytes, what: str, bytes_per_item: int = BYTES_PER_ITEM) -> dict[str, Any]:
    """Decode a msgpack map; anything else is a MalformedMessage naming `what` was expected.
    Decoding stops once its containers hold more entries than one per `bytes_per_item` of the
    frame (plus BASE_ITEMS): a message made of many small entries (a weight header's names and
    shapes: one per 13-15 bytes) passes a smaller figure."""
    budget = BASE_ITEMS + len(frame) // bytes_per_item
    seen = 0

    def counted(container):
        nonlocal seen
        seen += len(container)
        if seen > budget:
            raise _TooManyItems
        return container

    try:
        # unpackb bounds every length field by the frame's own size, so no field can claim more;
        # the hooks count what the containers hold (each is at most `budget` long itself).
        obj = msgpack.unpackb(
            frame,
            raw=False,
            strict_map_key=True,
            use_list=True,
            list_hook=counted,
            object_hook=counted,
            max_array_len=budget,
            max_map_len=budget,
        )
    except _TooManyItems:
        raise MalformedMessage(f"a {what} frame of {len(frame)} bytes holds more than {budget} entries") from None
    except Exception as err:  # msgpack raises several unrelated types for bad bytes
        raise MalformedMessage(f"not a msgpack {what}: {type(err).__name__}: {excerpt(str(err))}") from None
    if not isinstance(obj, dict):
        raise MalformedMessage(f"a {what} must be a msgpack map, got {type(obj).__name__}")
    return obj


def excerpt(text: str, limit: int = 200) -> str:
    """At most `limit` characters of `text` (a peer's data, quoted in a log line or an error),
    control characters escaped so that nothing sent can forge or break a log line."""
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[: limit + 1])
    return shown[:limit] + "..." if len(shown) > limit else shown


def require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """Fetch a field of an expected Python type, or say which field is wrong."""
    if key not in obj:
        raise MalformedMessage(f"{what} lacks field {key!r}")
    value = obj[key]
    if isinstance(value, bool) and kind in (int, float):
        raise MalformedMessage(f"{what} field {key!r} must be {kind.__name__}, got bool")
    if not isinstance(value, kind):
        raise MalformedMessage(f"{what} field {key!r} has type {type(value).__name__}")
    return value
