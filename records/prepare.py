"""A user's data file made into the records file the roles read, once, before a run.

Whatever the layout (our JSONL, ViRL39K's release or mirrored parquet), the driver reads it
here, keeps the rows the filter selects, drops the rows that cannot be used (with reasons: the
same checks as `launch.py check-data`, images by their headers), writes embedded images out as
files and writes one JSONL of records with absolute image paths. The roles read only that, so
none of them needs to know the layout, and a bad row never reaches an actor. The result is
cached under a key of the file's path, size and modification time and of the settings, so the
next run (a resume, an evaluation) finds it ready.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tqdm import tqdm

from records.benchmarks import BenchmarkItem, read_benchmark
from records.check import image_problems
from records.vqa import (
    URI_PREFIXES,
    ReadRecords,
    RowProblem,
    VQARecord,
    file_order,
    image_source,
    read_jsonl,
    reason_summary,
    write_records,
)

log = logging.getLogger(__name__)
# Bumped when the prepared output changes for the same input, so old preparations are redone.
PREPARE_FORMAT = 2  # 2: gold answers longer than the grader reads are refused
_COMPLETE = "COMPLETE"


@dataclass(frozen=True)
class RecordFilter:
    """Which rows of a data file a run uses (task.exclude_sources, task.categories)."""

    exclude_sources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()  # empty: every category

    @classmethod
    def of(cls, exclude_sources: list[str], categories: list[str]) -> RecordFilter:
        """The filter of a task section's `exclude_sources` and `categories`."""
        return cls(tuple(exclude_sources), tuple(categories))

    def keeps(self, record: VQARecord) -> bool:
        if record.source in self.exclude_sources:
            return False
        return not self.categories or record.category in self.categories


@dataclass(frozen=True)
class PreparedRecords:
    """The records file the roles read, and what was left out of it."""

    records_file: Path
    kept: int
    filtered_out: int  # rows the filter did not select
    problems: list[RowProblem]  # rows that cannot be used, with why


def read_data_file(path: Path, images_dir: Path | None = None) -> ReadRecords:
    """A training data file in any supported layout: `.jsonl`, or ViRL39K `.parquet` (either variant)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no data file at {path}")
    if path.suffix == ".parquet":
        from records.virl39k import read_virl39k

        return read_virl39k(path, images_dir)
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    raise ValueError(f"{path}: unsupported data file (expected .jsonl, or ViRL39K .parquet)")


def prepare_records(path: Path, cache_dir: Path, record_filter: RecordFilter, max_pixels: int) -> PreparedRecords:
    """The prepared records of `path` (made now, or found from an earlier call with the same inputs)."""
    path = Path(path).resolve()
    out = _prepared_dir(path, Path(cache_dir).expanduser(), asdict(record_filter), max_pixels)
    if not (out / _COMPLETE).is_file():
        _prepare(path, out, record_filter, max_pixels)
    prepared = _load(out)
    _log(path, prepared)  # every run says what it leaves out, also when it was prepared before
    return prepared


def _prepare(path: Path, out: Path, record_filter: RecordFilter, max_pixels: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    read = read_data_file(path, out / "images")
    check_filter_applies(path, read.records, record_filter)
    selected = [(r, place) for r, place in zip(read.records, read.places) if record_filter.keeps(r)]
    records = [r for r, _ in selected]
    with tqdm(
        total=len(records), desc=f"checking images of {path.name}", unit="image", disable=len(records) < 1000
    ) as bar:
        bad = image_problems(records, [p for _, p in selected], path.parent, max_pixels, progress=bar.update)
    unusable = {problem.where for problem in bad}
    usable = [_absolute(r, path.parent) for r, place in selected if place not in unusable]
    problems = sorted(read.problems + bad, key=file_order)
    _write_atomic(out / "records.jsonl", lambda tmp: write_records(tmp, usable))
    summary = {
        "kept": len(usable),
        "filtered_out": len(read.records) - len(records),
        "problems": [asdict(p) for p in problems],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / _COMPLETE).write_text(str(path) + "\n")


def prepare_benchmark(path: Path, cache_dir: Path, max_pixels: int) -> tuple[list[BenchmarkItem], Path]:
    """A benchmark's items (images as absolute paths; embedded ones written out) and the records
    file of their prompts the captioner's engine reads. Every item must be usable: a benchmark
    scored on fewer items than it has would not compare with anyone's numbers."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ValueError(f"no benchmark file at {path}")
    out = _prepared_dir(path, Path(cache_dir).expanduser(), "benchmark", max_pixels)
    if not (out / _COMPLETE).is_file():
        out.mkdir(parents=True, exist_ok=True)
        read = read_benchmark(path, out / "images")
        problems = read.problems + image_problems(
            [i.record() for i in read.items], read.places, path.parent, max_pixels
        )
        if problems:
            listed = "\n  ".join(str(p) for p in problems[:10])
            more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
            raise ValueError(
                f"{path}: {len(problems)} unusable items (`python launch.py check-data {path}` lists them all):\n  "
                f"{listed}{more}"
            )
        items = [replace(i, image=_absolute(i.record(), path.parent).image) for i in read.items]
        _write_atomic(out / "records.jsonl", lambda tmp: write_records(tmp, [i.record() for i in items]))
        _write_atomic(
            out / "benchmark.jsonl", lambda tmp: tmp.write_text("".join(json.dumps(asdict(i)) + "\n" for i in items))
        )
        (out / _COMPLETE).write_text(str(path) + "\n")
    lines = (out / "benchmark.jsonl").read_text().splitlines()
    items = [BenchmarkItem(**{**row, "choices": tuple(row["choices"])}) for row in map(json.loads, lines)]
    return items, out / "records.jsonl"


def _prepared_dir(path: Path, cache_dir: Path, settings: object, max_pixels: int) -> Path:
    stat = path.stat()
    key = json.dumps([PREPARE_FORMAT, str(path), stat.st_size, stat.st_mtime_ns, settings, max_pixels])
    return cache_dir / "prepared" / f"{path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def check_filter_applies(path: Path, records: list[VQARecord], record_filter: RecordFilter) -> None:
    # A filter on a field the file does not have would silently keep (or drop) everything.
    for field, wanted in (("source", record_filter.exclude_sources), ("category", record_filter.categories)):
        if wanted and not any(getattr(r, field) for r in records):
            key = "task.exclude_sources" if field == "source" else "task.categories"
            raise ValueError(f"{key} is set, but no row of {path} names its {field}")


def _absolute(record: VQARecord, root: Path) -> VQARecord:
    if record.image.startswith(URI_PREFIXES):
        return record
    return replace(record, image=str(Path(image_source(record, root)).resolve()))


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def _load(out: Path) -> PreparedRecords:
    summary = json.loads((out / "summary.json").read_text())
    return PreparedRecords(
        records_file=out / "records.jsonl",
        kept=summary["kept"],
        filtered_out=summary["filtered_out"],
        problems=[RowProblem(**p) for p in summary["problems"]],
    )


def _log(path: Path, prepared: PreparedRecords) -> None:
    log.info(
        "%s: %d records prepared in %s (%d left out by the filter)",
        path,
        prepared.kept,
        prepared.records_file,
        prepared.filtered_out,
    )
    if prepared.problems:
        log.warning(
            "%s: %d unusable rows left out (%s); `python launch.py check-data %s` lists them",
            path,
            len(prepared.problems),
            reason_summary(prepared.problems),
            path,
        )
