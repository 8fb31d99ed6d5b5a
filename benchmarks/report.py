"""BENCHMARKS.md: one section per benchmark, replaced in place when the benchmark runs again."""

from __future__ import annotations

import os
import platform
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

BENCHMARKS_FILE = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
_HEADER = "# Benchmarks\n\nEach section is written by the command it names; rerun it to refresh the section.\n"


def machine() -> str:
    """This machine, as each section names where it was measured."""
    return f"{platform.machine()}, {os.cpu_count()} cores"


def write_section(title: str, command: str, machine: str, body: str, path: Path = BENCHMARKS_FILE) -> None:
    """Replace (or append) the `## title` section of `path` with the command, machine, date and body."""
    section = f"## {title}\n\n`{command}` on {machine}, {time.strftime('%Y-%m-%d')}.\n\n{body.strip()}\n"
    text = path.read_text() if path.exists() else _HEADER
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def write_section_with_plot(
    title: str, command: str, machine: str, table: str, plot: Path, docs_path: Path, alt: str
) -> None:
    """`write_section` with the table and its plot, copied into the repository at `docs_path`
    (relative to it) for BENCHMARKS.md to show."""
    target = BENCHMARKS_FILE.parent / docs_path
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(plot, target)
    write_section(title, command, machine, f"{table}\n\n![{alt}]({docs_path})")


def fifth(rows: Sequence, last: bool, least: int = 1) -> list:
    """The first or last 20% of a run's metric rows (at least `least` of them): the windows the
    benchmarks compare rewards over, so one noisy step decides nothing."""
    size = max(least, len(rows) // 5)
    return list(rows[-size:] if last else rows[:size])
