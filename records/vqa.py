"""VQA records, the prompts every role reads: the record schema and its file readers (JSONL,
ViRL39K-style parquet).

Every dataset, the bundled one included, comes through `read_records` as `VQARecord`s whose
image is a path relative to the records file's folder, so no role knows which it got.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from vlm.image_fetch import MAX_PIXELS, MIN_PIXELS, fetch_image

# ViRL39K prefixes each question with this placeholder; our prompts place the image themselves.
_IMAGE_PLACEHOLDER = "<image>"
_PARQUET_COLUMNS = ("qid", "question", "answer", "image")
# A record's image given as one of these is passed on as is; anything else is a path.
_URI_PREFIXES = ("file://", "http://", "https://", "data:")


@dataclass(frozen=True)
class VQARecord:
    """One visual question: `image` is relative to the records file's folder, absolute, or a URI."""

    id: str
    image: str
    question: str
    answer: str


_RECORD_KEYS = tuple(f.name for f in fields(VQARecord))


def _read_jsonl(path: Path) -> list[VQARecord]:
    records = []
    with path.open(encoding="utf-8") as lines:
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({err})") from err
            for key in _RECORD_KEYS:
                if key not in row:
                    raise ValueError(f"{path}:{line_no}: missing key {key!r}")
            records.append(VQARecord(**{key: str(row[key]) for key in _RECORD_KEYS}))
    return records


def _parquet_image(path: Path, row_no: int, value: object) -> str | None:
    """The one image path of a ViRL39K row; None for rows with several images (we use one)."""
    if isinstance(value, str):
        return value
    images = list(value) if value is not None else []
    if len(images) == 1:
        return str(images[0])
    if not images:
        raise ValueError(f"{path}: row {row_no} has no image")
    return None


def _records_from_rows(path: Path, rows: Iterable[dict[str, Any]]) -> list[VQARecord]:
    """ViRL39K rows (qid, question, answer, image) as records; `path` is named in errors."""
    records, skipped = [], 0
    for row_no, row in enumerate(rows):
        image = _parquet_image(path, row_no, row["image"])
        if image is None:
            skipped += 1
            continue
        question = str(row["question"]).strip().removeprefix(_IMAGE_PLACEHOLDER).strip()
        records.append(VQARecord(id=str(row["qid"]), image=image, question=question, answer=str(row["answer"])))
    if skipped:
        # The captioner sees one image per prompt; say so rather than drop rows silently.
        logging.getLogger(__name__).warning("%s: skipped %d rows with more than one image", path, skipped)
    return records


def _read_parquet(path: Path) -> list[VQARecord]:
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ImportError(f"reading {path} needs pyarrow (pip install pyarrow)") from err
    table = pq.read_table(path)
    for column in _PARQUET_COLUMNS:
        if column not in table.column_names:
            raise ValueError(f"{path}: missing column {column!r} (have {table.column_names})")
    return _records_from_rows(path, table.select(list(_PARQUET_COLUMNS)).to_pylist())


def read_records(path: Path) -> list[VQARecord]:
    """Read `.jsonl` (keys id,image,question,answer) or ViRL39K-style `.parquet` records."""
    path = Path(path)
    if path.suffix == ".parquet":
        return _read_parquet(path)
    if path.suffix == ".jsonl":
        return _read_jsonl(path)
    raise ValueError(f"{path}: unsupported records file (expected .jsonl or .parquet)")


def load_image(
    record: VQARecord, root: Path, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """The record's image as RGB, resized as RACRO's inference does (qwen-vl-utils' `fetch_image`).

    `record.image` is a path (relative ones start from `root`), a `file://` URI, an http(s)
    URL or a base64 `data:image` URI. The pixel bounds default to qwen-vl-utils' (the released
    Qwen2.5-VL checkpoints' processors use the same); the processor then applies its own.
    """
    source = record.image
    if not source.startswith(_URI_PREFIXES) and not Path(source).is_absolute():
        source = str(Path(root) / source)
    try:
        return fetch_image(source, min_pixels=min_pixels, max_pixels=max_pixels)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"record {record.id!r}: cannot read image {_shown(source)}: {err}") from err


def _shown(source: str) -> str:
    """`source` for an error message: a data URI's payload is cut short."""
    return source if not source.startswith("data:") else source[:48] + "..."
