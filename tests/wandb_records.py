"""Read an offline Weights & Biases run back: its .wandb file is a LevelDB-style log of protobuf
records (a 7-byte header, then 32 KiB blocks of chunks, each with a 7-byte header of CRC,
length and kind), which `wandb sync` would upload."""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def offline_run_file(run_dir: Path) -> Path:
    found = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(found) == 1, f"expected one offline W&B run under {run_dir / 'wandb'}, found {found}"
    return found[0]


def records(path: Path):
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    position, pending = CHUNK_HEADER, b""
    while position + CHUNK_HEADER <= len(data):
        left = BLOCK - position % BLOCK
        if left < CHUNK_HEADER:  # a block's tail too short for a chunk header is padding
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + CHUNK_HEADER])
        if kind == 0:  # zero padding to the block's end
            position += left
            continue
        pending += data[position + CHUNK_HEADER : position + CHUNK_HEADER + length]
        position += CHUNK_HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def history(path: Path) -> list[dict]:
    """Each logged row, keys as logged (W&B's own `_step`, `_runtime`, `_timestamp` left out)."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            rows.append({k: v for k, v in items.items() if not k.startswith("_")})
    return rows


def run_config(path: Path) -> dict:
    """The config the run was started with, by top-level key."""
    for record in records(path):
        if record.WhichOneof("record_type") == "run":
            return {item.key: json.loads(item.value_json) for item in record.run.config.update if item.key != "_wandb"}
    raise AssertionError(f"{path} holds no run record")
