"""VQA records, the prompts every role reads: the record schema and the JSONL file roles read.

Every dataset, the bundled one included, reaches the roles as a JSONL file of `VQARecord`s
whose image is a path relative to the file's folder (or absolute, or a URI), so no role knows
which layout the user brought: other layouts (ViRL39K's parquet files, records/virl39k.py) are
turned into this one by the driver before a run (records/prepare.py).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from vlm.image_fetch import MAX_PIXELS, MIN_PIXELS, fetch_image
from wire.scoring import MAX_GOLD_ANSWER_CHARS, MCQuestion

# A record's image given as one of these is passed on as is; anything else is a path.
URI_PREFIXES = ("file://", "http://", "https://", "data:")


@dataclass(frozen=True)
class VQARecord:
    """One visual question: `image` is relative to the records file's folder, absolute, or a URI."""

    id: str
    image: str
    question: str
    answer: str
    # Where the row came from and what kind of question it is, when the dataset says (ViRL39K
    # does): what `task.exclude_sources` and `task.categories` filter on.
    category: str = ""
    source: str = ""
    # Multiple-choice questions about the image (the CapRL reward asks them of each caption).
    questions: tuple[MCQuestion, ...] = ()
    # Reference facts about the image a judge grades a caption against (reward.judge.target=caption).
    reference: str = ""


@dataclass(frozen=True)
class RowProblem:
    """Why one row of a data file cannot be used; `where` is "line 3" or "row 17" (1-based)."""

    where: str
    record_id: str
    reason: str

    def __str__(self) -> str:
        named = f" ({self.record_id})" if self.record_id else ""
        return f"{self.where}{named}: {self.reason}"


def file_order(problem: RowProblem) -> int:
    """Sort key putting problems in the order of their rows in the file."""
    number = problem.where.rsplit(" ", 1)[-1]
    return int(number) if number.isdigit() else 0


def reason_summary(problems: list[RowProblem]) -> str:
    """ "4 missing image, 1 empty answer": how many problems of each kind."""
    counts = Counter(p.reason.split(":")[0].split(" (")[0] for p in problems)
    return ", ".join(f"{n} {reason}" for reason, n in counts.most_common())


@dataclass(frozen=True)
class ReadRecords:
    """A data file's usable records, and the rows refused while reading it, with reasons."""

    records: list[VQARecord]
    problems: list[RowProblem]
    # Where each record is in the file ("line 3", "row 17"), for reports; parallel to `records`.
    places: list[str]


_REQUIRED_KEYS = ("id", "image", "question", "answer")
_OPTIONAL_KEYS = tuple(f.name for f in fields(VQARecord) if f.name not in _REQUIRED_KEYS)


def read_jsonl(path: Path) -> ReadRecords:
    """Records of a JSONL file; a row without a question or an answer is refused, not read."""
    records, problems, places = [], [], []
    with Path(path).open(encoding="utf-8") as lines:
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({err})") from err
            for key in _REQUIRED_KEYS:
                if key not in row:
                    raise ValueError(f"{path}:{line_no}: missing key {key!r}")
            try:
                record = _record(row)
            except (TypeError, ValueError, KeyError) as err:
                raise ValueError(f"{path}:{line_no}: bad multiple-choice questions ({err})") from err
            problem = text_problem(record)
            if problem:
                problems.append(RowProblem(f"line {line_no}", record.id, problem))
            else:
                records.append(record)
                places.append(f"line {line_no}")
    return ReadRecords(records, problems, places)


def _record(row: dict) -> VQARecord:
    texts = {key: str(row[key]) for key in (*_REQUIRED_KEYS, *_OPTIONAL_KEYS) if key in row and key != "questions"}
    questions = tuple(
        MCQuestion(str(q["question"]), tuple(str(o) for o in q["options"]), int(q["answer"]))
        for q in row.get("questions") or ()
    )
    return VQARecord(**texts, questions=questions)


def text_problem(record: VQARecord) -> str | None:
    """Why `record`'s text makes it unusable (no question, or no answer to grade against), if it does."""
    if not record.question.strip():
        return "empty question"
    if not record.answer.strip():
        return "empty answer (nothing to grade against)"
    return gold_answer_problem(record.answer)


def gold_answer_problem(answer: str) -> str | None:
    """Why a gold answer cannot be graded against, if it cannot: longer than the grader reads
    (wire.scoring.MAX_GOLD_ANSWER_CHARS; parsing one costs every answer the grading deadline)."""
    length = len(answer.strip())
    if length > MAX_GOLD_ANSWER_CHARS:
        return f"gold answer too long ({length} characters; the grader reads at most {MAX_GOLD_ANSWER_CHARS})"
    return None


def read_records(path: Path) -> list[VQARecord]:
    """The usable records of a `.jsonl` file (id, image, question, answer[, category, source])."""
    path = Path(path)
    if path.suffix != ".jsonl":
        raise ValueError(f"{path}: roles read .jsonl records (other layouts are prepared into one first)")
    return read_jsonl(path).records


def write_records(path: Path, records: list[VQARecord]) -> None:
    """`records` as JSONL, the layout `read_records` reads."""
    with Path(path).open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(asdict(record)) + "\n")


def image_source(record: VQARecord, root: Path) -> str:
    """The record's image as `fetch_image` takes it: a relative path joined to `root`."""
    source = record.image
    if not source.startswith(URI_PREFIXES) and not Path(source).is_absolute():
        source = str(Path(root) / source)
    return source


def load_image(
    record: VQARecord, root: Path, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """The record's image as RGB, resized as RACRO's inference does (qwen-vl-utils' `fetch_image`).

    `record.image` is a path (relative ones start from `root`), a `file://` URI, an http(s)
    URL or a base64 `data:image` URI. The pixel bounds default to qwen-vl-utils' (the released
    Qwen2.5-VL checkpoints' processors use the same); the processor then applies its own.
    """
    source = image_source(record, root)
    try:
        return fetch_image(source, min_pixels=min_pixels, max_pixels=max_pixels)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"record {record.id!r}: cannot read image {_shown(source)}: {err}") from err


def _shown(source: str) -> str:
    """`source` for an error message: a data URI's payload is cut short."""
    return source if not source.startswith("data:") else source[:48] + "..."
