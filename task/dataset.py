"""VQA records: the bundled synthetic set and real files (JSONL, ViRL39K-style parquet).

Every dataset, bundled or real, comes through `read_records` as `VQARecord`s whose image is a
path relative to the records file's folder, so the rest of the system never knows which it got.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from task.scenes import SceneObject, make_question, random_scene, render_scene

# ViRL39K prefixes each question with this placeholder; our prompts place the image themselves.
_IMAGE_PLACEHOLDER = "<image>"
_PARQUET_COLUMNS = ("qid", "question", "answer", "image")


@dataclass(frozen=True)
class VQARecord:
    """One visual question: `image` is relative to the records file's folder, or absolute."""

    id: str
    image: str
    question: str
    answer: str


_RECORD_KEYS = tuple(f.name for f in fields(VQARecord))


@dataclass(frozen=True)
class DatasetFiles:
    """Where `write_bundled_dataset` put the two splits, and the scenes of both."""

    train: Path
    eval: Path
    # Kept so the warm start never shows one of them: held-out accuracy then measures reading
    # unseen images, and the training reward starts where the held-out accuracy does.
    scenes: frozenset[tuple[SceneObject, ...]]


def _scene_stream(seed: int, split: str) -> Iterator[tuple[SceneObject, ...]]:
    # String seeds are hashed with SHA-512 by `random`, so streams are stable across runs
    # and independent between splits.
    rng = random.Random(f"bundled-scenes/{split}/{seed}")
    while True:
        yield random_scene(rng)


def _write_split(
    out_dir: Path, split: str, count: int, seed: int, exclude: set[tuple[SceneObject, ...]]
) -> tuple[Path, set[tuple[SceneObject, ...]]]:
    """Render `count` scenes (none of them in `exclude`) and write `<split>.jsonl`."""
    question_rng = random.Random(f"bundled-questions/{split}/{seed}")
    scenes = (scene for scene in _scene_stream(seed, split) if scene not in exclude)
    used: set[tuple[SceneObject, ...]] = set()
    path = out_dir / f"{split}.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for index in range(count):
            scene = next(scenes)
            used.add(scene)
            record_id = f"{split}-{index:06d}"
            image_rel = f"images/{record_id}.png"
            render_scene(scene).save(out_dir / image_rel)
            question, answer = make_question(question_rng, scene)
            record = VQARecord(id=record_id, image=image_rel, question=question, answer=answer)
            out.write(json.dumps(asdict(record)) + "\n")
    return path, used


def write_bundled_dataset(out_dir: Path, num_train: int, num_eval: int, seed: int) -> DatasetFiles:
    """Write `train.jsonl`, `eval.jsonl` and their PNGs under `out_dir/images/`.

    Deterministic from `seed`. Eval scenes are drawn from their own random stream and never
    equal a train scene, so eval reward measures reading images, not memory.
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    train_path, train_scenes = _write_split(out_dir, "train", num_train, seed, exclude=set())
    eval_path, eval_scenes = _write_split(out_dir, "eval", num_eval, seed, exclude=train_scenes)
    return DatasetFiles(train=train_path, eval=eval_path, scenes=frozenset(train_scenes | eval_scenes))


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


def load_image(record: VQARecord, root: Path) -> Image.Image:
    """The record's image as RGB; `root` is the folder its relative path starts from."""
    path = Path(record.image)
    if not path.is_absolute():
        path = Path(root) / path
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise ValueError(f"record {record.id!r}: cannot read image {path}: {err}") from err
