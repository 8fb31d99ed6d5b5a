"""ViRL39K's parquet layouts, read into VQA records.

Two layouts are in use:
- the release: `qid`, `question` (opening with a literal `<image>`), `answer` (often in
  `\\boxed{}`), `image` (a list of paths, relative to the file's folder or to an `images/`
  folder beside it), `category`, `source` and pass-rate columns;
- the mirrored copy: `qid`, `problem`, `answer`, `images` (the image files themselves, as bytes,
  in Hugging Face's image struct {bytes, path}), `category`.

A row with several images is refused with its count: the captioner reads one image per question.
Embedded images are written out as files into `images_dir` (or kept as data URIs when none is
given), so that every role reads a record the same way.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from records.embedded import image_suffix, write_once
from records.vqa import ReadRecords, RowProblem, VQARecord, text_problem

# ViRL39K prefixes each question with this placeholder; our prompts place the image themselves.
IMAGE_PLACEHOLDER = "<image>"
RELEASE_COLUMNS = ("qid", "question", "answer", "image")
MIRRORED_COLUMNS = ("qid", "problem", "answer", "images")
_OPTIONAL_COLUMNS = ("category", "source")
# Rows read from the file at once: the mirrored layout carries every image's bytes.
_BATCH_ROWS = 256


def read_virl39k(path: Path, images_dir: Path | None = None) -> ReadRecords:
    """The records of a ViRL39K parquet file in either layout; `images_dir` takes embedded images."""
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ImportError(f"reading {path} needs pyarrow (a dependency of this project: pip install -e .)") from err
    path = Path(path)
    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    mirrored = set(MIRRORED_COLUMNS) <= set(names)
    wanted = MIRRORED_COLUMNS if mirrored else RELEASE_COLUMNS
    missing = [c for c in wanted if c not in names]
    if missing:
        raise ValueError(
            f"{path}: not a ViRL39K layout: missing column(s) {missing} (the release has {list(RELEASE_COLUMNS)}, "
            f"the mirrored copy {list(MIRRORED_COLUMNS)}; this file has {names})"
        )
    columns = [*wanted, *(c for c in _OPTIONAL_COLUMNS if c in names)]
    records, problems, places = [], [], []
    for row_no, row in enumerate(_rows(parquet, columns), start=1):
        if mirrored:
            row = {**row, "question": row.pop("problem"), "image": row.pop("images")}
        images = _images(row["image"])
        record_id = str(row["qid"])
        if len(images) != 1:
            reason = (
                "no image"
                if not images
                else f"several images: {len(images)} (the captioner reads one image per question)"
            )
            problems.append(RowProblem(f"row {row_no}", record_id, reason))
            continue
        try:
            image = _embedded(images[0], images_dir) if mirrored else _release_image(path.parent, images[0])
        except ValueError as err:
            problems.append(RowProblem(f"row {row_no}", record_id, str(err)))
            continue
        record = VQARecord(
            id=record_id,
            image=image,
            question=_question(row["question"]),
            answer=str(row["answer"] if row["answer"] is not None else "").strip(),
            category=str(row.get("category") or ""),
            source=str(row.get("source") or ""),
        )
        problem = text_problem(record)
        if problem:
            problems.append(RowProblem(f"row {row_no}", record_id, problem))
        else:
            records.append(record)
            places.append(f"row {row_no}")
    return ReadRecords(records, problems, places)


def _rows(parquet, columns: list[str]) -> Iterator[dict[str, Any]]:
    for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=columns):
        yield from batch.to_pylist()


def _images(value: object) -> list:
    if value is None:
        return []
    if isinstance(value, (str, bytes, dict)):
        return [value]
    return list(value)


def _question(text: object) -> str:
    # Wherever the placeholder sits (ViRL39K puts it first), the prompt places the image itself.
    return " ".join(str(text or "").replace(IMAGE_PLACEHOLDER, " ").split())


def _release_image(root: Path, path: object) -> str:
    """The release's image path relative to the file's folder: in the `images/` folder beside
    the file, unless the path already leads to the file from the file's own folder."""
    path = str(path)
    if Path(path).is_absolute() or (root / path).exists():
        return path
    return str(Path("images") / path)  # where a missing file is looked for, and reported


def _embedded(value: object, images_dir: Path | None) -> str:
    """The mirrored layout's image bytes as a file in `images_dir` (absolute path), else a data URI."""
    data = value.get("bytes") if isinstance(value, dict) else value
    if not isinstance(data, bytes) or not data:
        raise ValueError("the image holds no bytes")
    suffix = image_suffix(data)
    if images_dir is None:
        return f"data:image/{suffix.lstrip('.')};base64,{base64.b64encode(data).decode('ascii')}"
    # Named by content: rows sharing an image share the file, and a rerun writes nothing.
    name = hashlib.sha256(data).hexdigest()[:32] + suffix
    return str(write_once(Path(images_dir) / name, data).resolve())
