"""The control messages of broadcast weight sync (gloo or NCCL), between learner rank 0 and each actor.

The tensors themselves go over the collective; these small msgpack messages (ZeroMQ, learner
ROUTER <-> actor DEALER) say who is in the group and what is about to be broadcast:
- actor -> learner `Hello`: I am actor i and my engine has `workers` workers (group ranks);
- learner -> actor `Join`: join the group (its backend's init info: where, world size, your ranks);
- learner -> actor `Round`: policy `version` follows as these tensors, in this order;
- actor -> learner `Ack`: done with the last Join or Round (or why not).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from wire.buffers import MalformedMessage, pack, require, unpack
from wire.weights import HEADER_BYTES_PER_ITEM, WEIGHT_DTYPES

SCHEMA_VERSION = 1
WHAT = "weight broadcast message"


@dataclass(frozen=True)
class Hello:
    actor_id: int
    workers: int


@dataclass(frozen=True)
class Join:
    init_info: dict  # the weight-transfer backend's worker init info (ours for gloo, vLLM's for NCCL)


@dataclass(frozen=True)
class Round:
    version: int
    names: list[str]
    dtype_names: list[str]
    shapes: list[list[int]]

    def update_info(self) -> dict:
        return {"names": self.names, "dtype_names": self.dtype_names, "shapes": self.shapes}


@dataclass(frozen=True)
class Ack:
    actor_id: int
    error: str = ""  # empty when it worked


_KINDS = {cls.__name__: cls for cls in (Hello, Join, Round, Ack)}


def encode_message(message: Hello | Join | Round | Ack) -> bytes:
    return pack({"schema": SCHEMA_VERSION, "kind": type(message).__name__, **asdict(message)})


def decode_message(frame: bytes) -> Hello | Join | Round | Ack:
    obj = unpack(frame, WHAT, bytes_per_item=HEADER_BYTES_PER_ITEM)  # a Round lists every tensor
    if obj.pop("schema", None) != SCHEMA_VERSION:
        raise MalformedMessage(f"{WHAT} of another schema, expected {SCHEMA_VERSION}")
    kind = _KINDS.get(obj.pop("kind", None))
    if kind is None:
        raise MalformedMessage(f"{WHAT} of unknown kind")
    try:
        message = kind(**obj)
    except TypeError as err:
        raise MalformedMessage(f"{WHAT} {kind.__name__}: {err}") from None
    _check_fields(message)
    return message


def _check_fields(message) -> None:
    what = f"{WHAT} {type(message).__name__}"
    fields = vars(message)
    for name in fields:
        require(fields, name, _FIELD_TYPES[name], what)
    if isinstance(message, Round):
        count = len(message.names)
        if len(message.dtype_names) != count or len(message.shapes) != count:
            raise MalformedMessage(f"{what}: names, dtype_names and shapes differ in length")
        if not all(isinstance(n, str) for n in message.names):
            raise MalformedMessage(f"{what}: names must be strings")
        if any(d not in WEIGHT_DTYPES for d in message.dtype_names):
            raise MalformedMessage(f"{what}: dtypes must be among {sorted(WEIGHT_DTYPES)}")
        if not all(isinstance(s, list) and all(isinstance(d, int) and d >= 0 for d in s) for s in message.shapes):
            raise MalformedMessage(f"{what}: shapes must be lists of sizes >= 0")


_FIELD_TYPES = {
    "actor_id": int,
    "workers": int,
    "init_info": dict,
    "version": int,
    "names": list,
    "dtype_names": list,
    "shapes": list,
    "error": str,
}
