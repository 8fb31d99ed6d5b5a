"""`launch.py check-data FILE`: every unusable row of a data or benchmark file, with why.

The same reading and checks as a run's preparation (records/prepare.py), with every image also
decoded, so that truncated and corrupt files show up too; nothing is written beside the data.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from records.benchmarks import read_benchmark
from records.check import image_problems
from records.prepare import RecordFilter, check_filter_applies, read_data_file
from records.vqa import RowProblem, file_order, reason_summary

BENCHMARK_SUFFIXES = (".json", ".tsv")


@dataclass(frozen=True)
class DataCheck:
    path: Path
    rows: int  # rows read, usable or not
    usable: int
    filtered_out: int  # usable, but not selected by the filter
    problems: list[RowProblem]


def check_data_file(path: Path, record_filter: RecordFilter, max_pixels: int) -> DataCheck:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no data file at {path}")
    with tempfile.TemporaryDirectory(prefix="check-data-") as images_dir:  # embedded images, decoded from disk
        if path.suffix in BENCHMARK_SUFFIXES:
            read = read_benchmark(path, Path(images_dir))
            records, places, filtered_out = [i.record() for i in read.items], read.places, 0
        else:
            read = read_data_file(path, Path(images_dir))
            check_filter_applies(path, read.records, record_filter)
            selected = [(r, p) for r, p in zip(read.records, read.places) if record_filter.keeps(r)]
            records, places = [r for r, _ in selected], [p for _, p in selected]
            filtered_out = len(read.records) - len(records)
        with tqdm(total=len(records), desc=f"decoding images of {path.name}", unit="image") as bar:
            bad = image_problems(records, places, path.parent, max_pixels, decode=True, progress=bar.update)
        # An embedded image has no name of its own: say so rather than name the scratch file.
        bad = [replace(p, reason=p.reason.replace(f"{images_dir}/", "(embedded) ")) for p in bad]
    problems = sorted(read.problems + bad, key=file_order)
    rows = len(records) + filtered_out + len(read.problems)
    return DataCheck(path, rows, len(records) - len(bad), filtered_out, problems)


def format_check(check: DataCheck) -> str:
    lines = [
        f"{check.path}: {check.rows} rows; {check.usable} usable, {check.filtered_out} left out by the filter "
        f"(task.exclude_sources, task.categories), {len(check.problems)} unusable"
    ]
    lines += [f"  {problem}" for problem in check.problems]
    if check.problems:
        lines.append(f"unusable by reason: {reason_summary(check.problems)}")
    return "\n".join(lines)
