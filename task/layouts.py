"""The bundled task's data written in the layouts users bring, for trying and testing the readers.

    python -m task.layouts OUT_DIR [key=value ...]   # from the bundled task (built on first use)

writes, from the bundled task's records:
- `virl39k/ViRL39K.parquet` (ViRL39K's release: `<image>` questions, `\\boxed{}` answers,
  image paths in a sibling `images/` folder, category, source and pass-rate columns) and
  `virl39k/ViRL39K-mirror.parquet` (the mirrored copy: `problem`, images embedded as bytes);
  both also hold the rows real datasets have and a run must leave out: several images, a
  missing image, a corrupt image, an empty answer; and two rows of source "DeepScaleR";
- `mathvista/testmini.json` with `mathvista/images/`: MathVista's annotation layout, half
  multiple choice (the answer is the choice's text), half free-form integers;
- `vlmeval/shapes.tsv`: VLMEvalKit's TSV, base64 images (one row naming another's image by its
  index, as VLMEvalKit stores shared images), options A-D, the answer's letter, category.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from records.vqa import VQARecord, read_records
from task.scenes import COLOURS

# Rows of the training layouts that a run must leave out, by the reason check-data gives.
BAD_TRAINING_ROWS = ("several images", "missing image", "unreadable image", "empty answer")
EXCLUDED_SOURCE = "DeepScaleR"
_CHOICES = 4


@dataclass(frozen=True)
class LayoutFiles:
    virl39k_release: Path
    virl39k_mirrored: Path
    mathvista: Path
    vlmeval: Path


def question_category(question: str) -> str:
    """What a bundled counting question asks by: "colour", "shape", "colour and shape" or "total"."""
    words = question.lower().rstrip("?").split()[2:]  # after "How many"
    by_colour = words[0] in COLOURS
    by_shape = words[1 if by_colour else 0] != "objects"
    return {(True, True): "colour and shape", (True, False): "colour", (False, True): "shape"}.get(
        (by_colour, by_shape), "total"
    )


def write_layouts(records_file: Path, out_dir: Path, count: int = 16, seed: int = 0) -> LayoutFiles:
    """The first `count` records of `records_file` in each layout under `out_dir`."""
    records = read_records(records_file)[:count]
    if len(records) < 8:
        raise ValueError(f"{records_file}: need at least 8 records for the layouts, found {len(records)}")
    images = {r.id: (Path(records_file).parent / r.image).read_bytes() for r in records}
    out_dir = Path(out_dir)
    rng = random.Random(f"layouts/{seed}")
    return LayoutFiles(
        virl39k_release=_write_release(records, images, out_dir / "virl39k"),
        virl39k_mirrored=_write_mirrored(records, images, out_dir / "virl39k"),
        mathvista=_write_mathvista(records, images, out_dir / "mathvista", rng),
        vlmeval=_write_vlmeval(records, images, out_dir / "vlmeval", rng),
    )


def _virl_row(record: VQARecord, index: int) -> dict:
    return {
        "qid": record.id,
        "question": f"<image>{record.question}",
        "answer": f"\\boxed{{{record.answer}}}",
        "category": question_category(record.question),
        # The first two rows stand for the DeepScaleR-sourced rows RACRO leaves out.
        "source": EXCLUDED_SOURCE if index < 2 else "bundled-shapes",
        "PassRate_32BTrained": 0.5,
        "PassRate_7BBase": 0.25,
    }


def _write_release(records: list[VQARecord], images: dict[str, bytes], folder: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for index, record in enumerate(records):
        name = f"{record.id}.png"
        (folder / "images" / name).write_bytes(images[record.id])
        rows.append({**_virl_row(record, index), "image": [name]})  # relative to the sibling images/
    first = records[0]
    (folder / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but not an image")
    rows += [
        {**_virl_row(first, 9), "qid": "bad-several-images", "image": [f"{first.id}.png", f"{records[1].id}.png"]},
        {**_virl_row(first, 9), "qid": "bad-missing-image", "image": ["absent.png"]},
        {**_virl_row(first, 9), "qid": "bad-unreadable-image", "image": ["corrupt.png"]},
        {**_virl_row(first, 9), "qid": "bad-empty-answer", "image": [f"{first.id}.png"], "answer": ""},
    ]
    path = folder / "ViRL39K.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _write_mirrored(records: list[VQARecord], images: dict[str, bytes], folder: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def row(record: VQARecord, index: int, embedded: list[bytes]) -> dict:
        base = _virl_row(record, index)
        return {
            "qid": base["qid"],
            "problem": base["question"],
            "answer": base["answer"],
            "category": base["category"],
            # Hugging Face's image feature: a struct of the file's bytes and its original name.
            "images": [{"bytes": data, "path": f"{record.id}.png"} for data in embedded],
        }

    first = records[0]
    rows = [row(r, i, [images[r.id]]) for i, r in enumerate(records)]
    rows += [
        {**row(first, 9, [images[first.id], images[records[1].id]]), "qid": "bad-several-images"},
        {**row(first, 9, [b"not an image"]), "qid": "bad-unreadable-image"},
        {**row(first, 9, [images[first.id]]), "qid": "bad-empty-answer", "answer": ""},
    ]
    path = folder / "ViRL39K-mirror.parquet"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _choices(answer: str, rng: random.Random) -> list[str]:
    """Four different counts, the right one among them, in random order."""
    others = rng.sample([n for n in range(10) if str(n) != answer], _CHOICES - 1)
    choices = [answer, *map(str, others)]
    rng.shuffle(choices)
    return choices


def _write_mathvista(records: list[VQARecord], images: dict[str, bytes], folder: Path, rng: random.Random) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    items = {}
    for index, record in enumerate(records, start=1):
        (folder / "images" / f"{index}.png").write_bytes(images[record.id])
        multiple_choice = index % 2 == 1
        items[str(index)] = {
            "pid": str(index),
            "question": record.question,
            "image": f"images/{index}.png",
            "choices": _choices(record.answer, rng) if multiple_choice else None,
            "unit": None,
            "precision": None,
            "answer": record.answer,
            "question_type": "multi_choice" if multiple_choice else "free_form",
            "answer_type": "text" if multiple_choice else "integer",
            "metadata": {
                "category": question_category(record.question),
                "task": "counting",
                "source": "bundled-shapes",
            },
        }
    path = folder / "testmini.json"
    path.write_text(json.dumps(items, indent=1))
    return path


def _write_vlmeval(records: list[VQARecord], images: dict[str, bytes], folder: Path, rng: random.Random) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    letters = "ABCD"
    lines = ["\t".join(["index", "image", "question", *letters, "answer", "category"])]
    for index, record in enumerate(records):
        image = base64.b64encode(images[record.id]).decode("ascii")
        if index == 1:
            # The first row's question again, its image named by the first row's index, as
            # VLMEvalKit stores an image that several questions share.
            record, image = records[0], "0"
        choices = _choices(record.answer, rng)
        row = [
            str(index),
            image,
            record.question,
            *choices,
            letters[choices.index(record.answer)],
            question_category(record.question),
        ]
        lines.append("\t".join(row))
    path = folder / "shapes.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str]) -> int:
    """Build (or find) the bundled task as configured and write its layouts into OUT_DIR."""
    from configs.load import load_config
    from task.bundle import ensure_bundled_task

    if not argv or "=" in argv[0]:
        print("usage: python -m task.layouts OUT_DIR [key=value ...]", file=sys.stderr)
        return 2
    config = load_config(overrides=argv[1:])
    task = config.task
    bundle = ensure_bundled_task(
        Path(task.cache_dir).expanduser(), task.seed, task.num_train, task.num_eval, task.warm_start
    )
    out = Path(argv[0]).resolve()
    shutil.rmtree(out, ignore_errors=True)
    files = write_layouts(bundle.eval_file, out)
    models = f"models.captioner={bundle.captioner} models.reasoner={bundle.reasoner}"
    bundled = " ".join(argv[1:])  # the bundled task these came from holds the eval's default models
    excluded = f"task.exclude_sources=[{EXCLUDED_SOURCE}]"
    print(f"""written under {out}; try:
  python launch.py check-data {files.virl39k_release}
  python launch.py task.kind=files task.train_file={files.virl39k_release} {excluded} eval.at_end=false {models}
  python launch.py task.kind=files task.train_file={files.virl39k_mirrored} eval.at_end=false {models}
  python launch.py eval data={files.mathvista} out={out}/eval-mathvista {bundled}
  python launch.py eval data={files.vlmeval} out={out}/eval-vlmeval {bundled}""")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
