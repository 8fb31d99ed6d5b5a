"""Reward against learner step and against wall-clock time, as a PNG in the run directory."""

from __future__ import annotations

from pathlib import Path

from evaluation.heldout import EvalResult
from learner.metrics import read_eval_points, read_metrics
from wire import metric_names as names

PLOT_FILE = "reward.png"
# Steps averaged in the smoothed curve drawn over the per-step rewards.
_SMOOTHING = 10


def moving_average(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_run(run_dir: Path, held_out: list[EvalResult]) -> Path | None:
    """Draw `reward.png` from the run's metrics, with the held-out accuracy measured while training
    (if it was), and the held-out accuracies of `held_out` marked at the run's start (the first
    result) and end (the last). None when the run has no metrics yet."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on cluster nodes
    import matplotlib.pyplot as plt

    metrics_path = Path(run_dir) / "metrics.jsonl"
    rows = (
        [m for m in read_metrics(metrics_path) if m.get(names.REWARD_MEAN) is not None] if metrics_path.exists() else []
    )
    if not rows:
        return None
    steps = [m["step"] for m in rows]
    seconds = [m[names.TIME_ELAPSED_S] for m in rows]
    rewards = [m[names.REWARD_MEAN] for m in rows]
    smooth = moving_average(rewards, _SMOOTHING)
    points = read_eval_points(metrics_path)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for axis, x, label, at in (
        (axes[0], steps, "learner step", "step"),
        (axes[1], seconds, "wall-clock time (s)", names.EVAL_ELAPSED_S),
    ):
        axis.plot(x, rewards, color="tab:blue", alpha=0.35, linewidth=1, label=f"{names.REWARD_MEAN} (per step)")
        axis.plot(x, smooth, color="tab:blue", linewidth=2, label=f"{names.REWARD_MEAN} ({_SMOOTHING}-step mean)")
        if points:
            axis.errorbar(
                [p[at] for p in points],
                [p[names.EVAL_ACCURACY] for p in points],
                yerr=[p[names.EVAL_STDERR] or 0.0 for p in points],
                color="tab:green",
                marker=".",
                capsize=3,
                label=f"held-out accuracy while training ({points[0][names.EVAL_NUM_PROMPTS]} prompts)",
            )
        for result, at in zip(held_out[:1] + held_out[-1:], (x[0], x[-1])):
            axis.errorbar(
                [at],
                [result.accuracy],
                yerr=[result.stderr],
                fmt="o",
                color="tab:red",
                capsize=4,
                label=None if at != x[0] else "held-out accuracy (before / after)",
            )
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("reward, held-out accuracy")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend(loc="lower right", fontsize=8)
    figure.suptitle(f"{Path(run_dir).name}: caption reward during training")
    figure.tight_layout()
    out = Path(run_dir) / PLOT_FILE
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
