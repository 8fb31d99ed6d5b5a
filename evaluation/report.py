"""The held-out evaluation as a table (printed, and saved with the numbers as JSON)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

from evaluation.heldout import EvalResult

EVAL_JSON = "eval.json"
EVAL_TABLE = "eval.md"


def format_table(results: list[EvalResult]) -> str:
    """A Markdown table, one row per policy checkpoint, and the change from the first to the last."""
    lines = [
        "| policy | held-out accuracy | std. error | prompts x samples | caption tokens |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.label} | {r.accuracy:.3f} | {r.stderr:.3f} | {r.num_prompts} x {r.samples_per_prompt}"
            f" | {r.mean_caption_tokens:.1f} |"
        )
    if len(results) > 1:
        first, last = results[0], results[-1]
        # Independent prompts' samples in both runs: the errors add in quadrature.
        spread = math.hypot(first.stderr, last.stderr)
        lines.append(f"| change | {last.accuracy - first.accuracy:+.3f} | {spread:.3f} | | |")
    return "\n".join(lines)


def save_results(results: list[EvalResult], out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    (out_dir / EVAL_JSON).write_text(json.dumps([asdict(r) for r in results], indent=2))
    (out_dir / EVAL_TABLE).write_text(format_table(results) + "\n")
    return out_dir / EVAL_TABLE


def load_results(out_dir: Path) -> list[EvalResult]:
    """The saved results, or none if the run was not evaluated."""
    path = Path(out_dir) / EVAL_JSON
    if not path.exists():
        return []
    return [EvalResult(**row) for row in json.loads(path.read_text())]
