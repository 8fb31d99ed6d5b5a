"""Reading a run directory's per-step files in tests."""

from __future__ import annotations

import json
import time
from pathlib import Path


def consumed(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "consumed.jsonl").read_text().splitlines()]


def step_prompts(run_dir: Path) -> list[list[str]]:
    """Each step's prompt ids, trained on or dropped, in a fixed order."""
    return [sorted(g[2] for g in [*row["trained"], *row["dropped"]]) for row in consumed(run_dir)]


def positions(run_dir: Path) -> list[tuple[int, int]]:
    """(actor, stream position) of every group the run took, in the order it took them."""
    return [(g[0], g[1]) for row in consumed(run_dir) for g in [*row["trained"], *row["dropped"]]]


def wait_for_checkpoint(run, run_dir: Path, timeout: float = 400) -> int:
    """The policy version of the first complete checkpoint a running `launch.py` saves."""
    latest = run_dir / "checkpoints" / "latest"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert run.proc.poll() is None, run.output()[-3000:]
        # DeepSpeed writes the file in place: it may exist a moment before it holds the tag.
        if latest.is_file() and (tag := latest.read_text().strip()):
            return int(tag.removeprefix("version_"))
        time.sleep(0.2)
    raise TimeoutError(f"no checkpoint in {run_dir} after {timeout:.0f} s")
