"""Evaluation benchmarks in the layouts they are distributed in, read into `BenchmarkItem`s.

- MathVista's annotation file (JSON): a mapping of pid to item, or a list of items, each with
  `question`, `image` (a path relative to the file's folder), `choices` (a list, or null for a
  free-form question), `answer` (the choice's text for multiple choice), `question_type`
  (multi_choice | free_form), `answer_type` (text | integer | float | list), `precision` (decimal
  places of a float answer) and `metadata.category`.
- VLMEvalKit's TSV files (MMMU, MathVista, MathVision, MathVerse and others are published this
  way): `index`, `image` (base64; a row may instead name the index of a row holding the same
  image), `question`, options in columns `A`, `B`, ..., `answer` (the option letter, or the free
  answer), `category`, optionally `hint`, `answer_type`, `precision`.

A multiple-choice item keeps its gold answer as the option's letter, whichever the file gave.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from records.embedded import image_suffix, write_once
from records.vqa import RowProblem, VQARecord, gold_answer_problem
from wire.scoring import multiple_choice_text

OPTION_LETTERS = "ABCDEFGHIJ"
ANSWER_TYPES = ("text", "integer", "float", "list")
# What pandas and spreadsheet tools write for an empty cell.
_MISSING = ("", "nan", "NaN", "None", "null")


@dataclass(frozen=True)
class BenchmarkItem:
    """One benchmark question; `answer` is the gold option's letter when `choices` are given."""

    id: str
    image: str  # relative to the benchmark file's folder, absolute, or a data URI
    question: str
    answer: str
    choices: tuple[str, ...] = ()
    answer_type: str = "text"  # text | integer | float | list (free-form answers)
    precision: int | None = None  # decimal places a float answer is compared at
    category: str = ""

    @property
    def multiple_choice(self) -> bool:
        return bool(self.choices)

    @property
    def letters(self) -> str:
        return OPTION_LETTERS[: len(self.choices)]

    def prompt(self) -> str:
        """The question as both models read it: the options listed under it, letter first."""
        if not self.choices:
            return self.question
        return multiple_choice_text(self.question, self.letters, self.choices)

    def record(self) -> VQARecord:
        """The item as a VQA record (what the captioner's engine reads)."""
        return VQARecord(
            id=self.id, image=self.image, question=self.prompt(), answer=self.answer, category=self.category
        )


@dataclass(frozen=True)
class ReadBenchmark:
    items: list[BenchmarkItem]
    problems: list[RowProblem]
    places: list[str]  # where each item is in the file, parallel to `items`


def read_benchmark(path: Path, images_dir: Path | None = None) -> ReadBenchmark:
    """A `.json` (MathVista) or `.tsv` (VLMEvalKit) benchmark; `images_dir` takes embedded images."""
    path = Path(path)
    if path.suffix == ".json":
        return read_mathvista(path)
    if path.suffix == ".tsv":
        return read_vlmeval_tsv(path, images_dir)
    raise ValueError(f"{path}: unsupported benchmark file (expected MathVista .json or VLMEvalKit .tsv)")


def read_mathvista(path: Path) -> ReadBenchmark:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if isinstance(data, dict):
        rows = [(str(key), row) for key, row in data.items()]
    elif isinstance(data, list):
        rows = [
            (str(row.get("pid", i)) if isinstance(row, dict) else str(i), row) for i, row in enumerate(data, start=1)
        ]
    else:
        raise ValueError(f"{path}: expected a mapping of pid to item, or a list of items")
    return _collect(
        (f"item {number}", pid, partial(_mathvista_item, pid, row)) for number, (pid, row) in enumerate(rows, start=1)
    )


def _collect(rows: Iterable[tuple[str, str, Callable[[], BenchmarkItem]]]) -> ReadBenchmark:
    """Each row's item; a row whose item cannot be made (ValueError) is that row's problem."""
    items, problems, places = [], [], []
    for where, item_id, make in rows:
        try:
            items.append(make())
        except ValueError as err:
            problems.append(RowProblem(where, item_id, str(err)))
            continue
        places.append(where)
    return ReadBenchmark(items, problems, places)


def _mathvista_item(pid: str, row: object) -> BenchmarkItem:
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    for key in ("question", "image", "answer"):
        if _missing(row.get(key)):
            raise ValueError(f"no {key}")
    choices = tuple(str(c) for c in row.get("choices") or ())
    if row.get("question_type") == "multi_choice" and not choices:
        raise ValueError("question_type multi_choice but no choices")
    metadata = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
    return _item(
        pid,
        str(row["image"]),
        str(row["question"]),
        str(row["answer"]),
        choices,
        row.get("answer_type"),
        row.get("precision"),
        metadata.get("category") or row.get("category"),
    )


def read_vlmeval_tsv(path: Path, images_dir: Path | None = None) -> ReadBenchmark:
    csv.field_size_limit(sys.maxsize)  # a base64 image is one (large) cell
    with Path(path).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        columns = reader.fieldnames or []
        rows = list(reader)
    missing = [c for c in ("question", "answer") if c not in columns]
    if missing or not ({"image", "image_path"} & set(columns)):
        raise ValueError(
            f"{path}: not a VLMEvalKit TSV: need question, answer and image (or image_path) columns, have {columns}"
        )
    # VLMEvalKit stores an image shared by several questions once; the others name its index.
    shared = {
        row.get("index"): row.get("image") for row in rows if not _missing(row.get("image")) and len(row["image"]) > 64
    }
    ids = [row.get("index") or str(number) for number, row in enumerate(rows, start=1)]
    # Line 1 is the header.
    return _collect(
        (f"line {n + 2}", ids[n], partial(_tsv_item, ids[n], row, columns, shared, images_dir))
        for n, row in enumerate(rows)
    )


def _tsv_item(
    item_id: str, row: dict[str, str], columns: list[str], shared: dict, images_dir: Path | None
) -> BenchmarkItem:
    image = _tsv_image(row, shared, images_dir)
    choices = tuple(row[c] for c in _option_columns(columns, row))
    question = row["question"] if _missing(row.get("hint")) else f"Hint: {row['hint']}\n{row['question']}"
    return _item(
        item_id,
        image,
        question,
        row["answer"],
        choices,
        row.get("answer_type"),
        row.get("precision"),
        row.get("category"),
    )


def _option_columns(columns: list[str], row: dict[str, str]) -> list[str]:
    """The option columns A, B, ... this row fills, in order, up to the first empty one."""
    filled = []
    for letter in OPTION_LETTERS:
        if letter not in columns or _missing(row.get(letter)):
            break
        filled.append(letter)
    return filled


def _tsv_image(row: dict[str, str], shared: dict, images_dir: Path | None) -> str:
    if not _missing(row.get("image_path")) and _missing(row.get("image")):
        return row["image_path"]
    value = row.get("image") or ""
    if _missing(value):
        raise ValueError("no image")
    if len(value) <= 64 and value in shared:
        value = shared[value]
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"image is not valid base64 ({err})") from None
    if images_dir is None:
        return f"data:image/{image_suffix(data).lstrip('.')};base64,{value}"
    name = hashlib.sha256(data).hexdigest()[:32] + image_suffix(data)
    return str(write_once(Path(images_dir) / name, data).resolve())


def _item(
    item_id: str,
    image: str,
    question: str,
    answer: str,
    choices: tuple[str, ...],
    answer_type: object,
    precision: object,
    category: object,
) -> BenchmarkItem:
    """An item from one row's fields, checked; a multiple-choice answer becomes its letter."""
    answer = answer.strip()
    if not question.strip() or not answer:
        raise ValueError("empty question" if not question.strip() else "empty answer (nothing to grade against)")
    if len(choices) > len(OPTION_LETTERS):
        raise ValueError(f"{len(choices)} choices (at most {len(OPTION_LETTERS)} are lettered)")
    kind = "text" if _missing(answer_type) else str(answer_type)
    if kind not in ANSWER_TYPES:
        raise ValueError(f"answer_type {kind!r} is none of {ANSWER_TYPES}")
    if choices:
        answer = _gold_letter(answer, choices)
    too_long = gold_answer_problem(answer)
    if too_long:
        raise ValueError(too_long)
    return BenchmarkItem(
        id=item_id,
        image=image,
        question=question.strip(),
        answer=answer,
        choices=choices,
        answer_type=kind,
        precision=None if _missing(precision) else int(float(precision)),
        category="" if _missing(category) else str(category),
    )


def _gold_letter(answer: str, choices: tuple[str, ...]) -> str:
    """The gold option's letter: the answer is the letter itself, or one choice's text."""
    letters = OPTION_LETTERS[: len(choices)]
    bare = answer.strip("() .").upper()
    if len(bare) == 1 and bare in letters:
        return bare
    matches = [letter for letter, choice in zip(letters, choices) if choice.strip() == answer]
    if len(matches) != 1:
        raise ValueError(f"answer {answer!r} is none of the options {letters} nor the text of exactly one choice")
    return matches[0]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value) or str(value).strip() in _MISSING
