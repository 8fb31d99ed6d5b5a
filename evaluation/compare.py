"""Several finished runs side by side: a table of where each went, and their reward curves.

    python -m evaluation.compare RUN_DIR [RUN_DIR ...] [--plot FILE]

Each run directory holds `metrics.jsonl` and, if it was evaluated, `eval.json`.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from pathlib import Path

from evaluation.heldout import EvalResult
from evaluation.plot import moving_average
from evaluation.report import load_results
from learner.metrics import read_metrics
from wire import metric_names as names

# The share of learner steps averaged at the start and at the end of a run.
_EDGE = 0.2
# Steps in the best window of the reward curve (where a run peaked, whatever it did after).
_WINDOW = 20


@dataclass(frozen=True)
class RunSummary:
    name: str
    steps: int
    reward_first: float  # mean reward over the first 20% of steps
    reward_last: float  # ... and over the last 20%
    best_window: float  # best mean reward over 20 consecutive steps
    best_window_start: int
    staleness_mean: float
    seconds: float  # wall-clock time of the learner steps
    held_out: list[EvalResult]  # initial, trained (empty when not evaluated)


def summarise(run_dir: Path) -> RunSummary:
    rows = [m for m in read_metrics(run_dir / "metrics.jsonl") if m.get(names.REWARD_MEAN) is not None]
    if not rows:
        raise ValueError(f"{run_dir}: no learner step in metrics.jsonl")
    rewards = [m[names.REWARD_MEAN] for m in rows]
    edge = max(1, round(len(rows) * _EDGE))
    window = min(_WINDOW, len(rows))
    means = [sum(rewards[i : i + window]) / window for i in range(len(rows) - window + 1)]
    best = max(range(len(means)), key=means.__getitem__)
    return RunSummary(
        name=run_dir.name,
        steps=len(rows),
        reward_first=statistics.fmean(rewards[:edge]),
        reward_last=statistics.fmean(rewards[-edge:]),
        best_window=means[best],
        best_window_start=rows[best]["step"],
        staleness_mean=statistics.fmean(m[names.STALENESS_MEAN] for m in rows),
        seconds=rows[-1][names.TIME_ELAPSED_S],
        held_out=load_results(run_dir),
    )


def format_runs(runs: list[RunSummary]) -> str:
    lines = [
        f"| run | first {_EDGE:.0%} | last {_EDGE:.0%} | best {_WINDOW} steps | held-out accuracy | staleness | steps "
        "| time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        held = " → ".join(f"{e.accuracy:.3f} ± {e.stderr:.3f}" for e in r.held_out) or "not evaluated"
        lines.append(
            f"| {r.name} | {r.reward_first:.3f} | {r.reward_last:.3f} | {r.best_window:.3f} (from step"
            f" {r.best_window_start}) | {held} | {r.staleness_mean:.2f} | {r.steps} | {r.seconds:.0f} s |"
        )
    if len(runs) > 1:
        lines.append(_spread_row(runs))
    return "\n".join(lines)


def _spread_row(runs: list[RunSummary]) -> str:
    def spread(values: list[float]) -> str:
        return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"

    trained = [r.held_out[-1].accuracy for r in runs if r.held_out]
    held = spread(trained) if len(trained) > 1 else ""
    return (
        f"| mean ± sd | {spread([r.reward_first for r in runs])} | {spread([r.reward_last for r in runs])}"
        f" | {spread([r.best_window for r in runs])} | {held} | | | |"
    )


def plot_runs(run_dirs: list[Path], runs: list[RunSummary], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for run_dir, summary in zip(run_dirs, runs):
        rows = [m for m in read_metrics(run_dir / "metrics.jsonl") if m.get(names.REWARD_MEAN) is not None]
        (line,) = axis.plot(
            [m["step"] for m in rows], moving_average([m[names.REWARD_MEAN] for m in rows], 10), label=summary.name
        )
        if summary.held_out:
            axis.plot([rows[-1]["step"]], [summary.held_out[-1].accuracy], "o", color=line.get_color())
    axis.set_xlabel("learner step")
    axis.set_ylabel("reward (10-step mean)")
    axis.set_title("caption reward; dots: held-out accuracy after training", fontsize=10)
    axis.set_ylim(-0.02, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--plot", type=Path, help="also draw their reward curves into this PNG")
    args = parser.parse_args(argv)
    runs = [summarise(run) for run in args.runs]
    print(format_runs(runs))
    if args.plot:
        print(f"plot: {plot_runs(args.runs, runs, args.plot)}")


if __name__ == "__main__":
    main()
