"""Per-step metrics: one JSON object per learner step in metrics.jsonl, and TensorBoard scalars;
between them, one object per evaluation while training (wire/eval_points.py), told apart by its
`eval/accuracy` key."""

from __future__ import annotations

import json
import math
from pathlib import Path

from wire.metric_names import EVAL_ACCURACY, STEP


class MetricsLog:
    def __init__(self, run_dir: Path):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / "metrics.jsonl"
        self._file = self.path.open("a", buffering=1)  # line-buffered: readable while training
        from torch.utils.tensorboard import SummaryWriter

        self._tensorboard = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def write(self, metrics: dict[str, float | int]) -> None:
        # NaN (a metric with nothing to measure this step) is written as null: valid JSON.
        clean = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in metrics.items()}
        self._file.write(json.dumps(clean, sort_keys=True) + "\n")
        step = int(metrics[STEP])
        for key, value in plotted(metrics).items():
            self._tensorboard.add_scalar(key, value, step)

    def close(self) -> None:
        self._file.close()
        self._tensorboard.close()


def read_metrics(path: Path) -> list[dict]:
    """The learner steps' rows."""
    return [row for row in _rows(path) if EVAL_ACCURACY not in row]


def read_eval_points(path: Path) -> list[dict]:
    """The rows of the evaluations while training, by evaluated step."""
    return sorted((row for row in _rows(path) if EVAL_ACCURACY in row), key=lambda row: row["step"])


def plotted(row: dict) -> dict[str, float | int]:
    """The values a tracker plots against the row's step: every number but the step itself."""
    return {key: value for key, value in row.items() if key != STEP and isinstance(value, (int, float))}


def rows_after(path: Path, offset: int) -> tuple[list[dict], int]:
    """The complete rows written after byte `offset`, and the offset after the last of them (a row
    still being written is left for the next read)."""
    with path.open("rb") as file:
        file.seek(offset)
        data = file.read()
    complete = data[: data.rfind(b"\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()], offset + len(complete)


def _rows(path: Path) -> list[dict]:
    # The learner may be writing a row as this reads the file: only rows ended by their newline count.
    return rows_after(path, 0)[0]
