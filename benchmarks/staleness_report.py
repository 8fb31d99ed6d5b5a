"""The staleness sweep's table and plot (benchmarks.staleness runs the sweep)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from benchmarks.sweep_points import PointResult, SweepPoint
from evaluation.plot import moving_average
from learner.metrics import read_metrics
from wire import metric_names as names

SMOOTHING = 10  # steps in the plotted moving average of the reward
LINE_STYLES = {"none": "-", "tis": "--", "mask": "-.", "decoupled": ":"}


def speed_vs_sync(result: PointResult, results: list[PointResult]) -> float:
    """Groups/s against the eta = 0 run of the same correction and seed (nan without one)."""
    sync = [r for r in results if (r.eta, r.correction, r.seed) == (0, result.correction, result.seed)]
    return result.groups_per_s / sync[0].groups_per_s if sync else float("nan")


def sweep_table(results: list[PointResult], initial_heldout: float, noise_point: tuple[int, str]) -> str:
    lines = [
        (
            "| eta | correction | seed | groups/s | x eta=0 | s/step | staleness mean / max | dropped stale "
            "| corrected tokens | max weight | reward, last 20% | held-out accuracy |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        speed = speed_vs_sync(r, results)
        lines.append(
            f"| {r.eta} | {r.correction} | {r.seed} | {r.groups_per_s:.2f} | "
            f"{'–' if math.isnan(speed) else f'{speed:.2f}'} "
            f"| {r.seconds_per_step:.2f} | {r.staleness_mean:.2f} / {r.staleness_max} | {r.dropped_stale} "
            f"| {100 * r.corrected_fraction:.1f}% | {r.weight_max:.3g} | {r.reward_last:.3f} "
            f"| {r.heldout:.3f} ± {r.heldout_stderr:.3f} |"
        )
    lines.append("")
    lines.append(f"Held-out accuracy of the initial captioner: {initial_heldout:.3f}.")
    noise = [r for r in results if (r.eta, r.correction) == noise_point]
    if len(noise) > 1:
        lines.append(
            f"Noise between seeds (eta={noise_point[0]}, {noise_point[1]}; seeds "
            f"{', '.join(str(r.seed) for r in noise)}): sd of groups/s {_sd([r.groups_per_s for r in noise]):.3f}, "
            f"of last-20% reward {_sd([r.reward_last for r in noise]):.3f}, "
            f"of held-out accuracy {_sd([r.heldout for r in noise]):.3f}."
        )
    return "\n".join(lines)


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def plot_sweep(out: Path, points: list[SweepPoint], results: list[PointResult], path: Path) -> Path:
    """Reward against steps and against wall-clock time (seed 0 of each point), and held-out
    accuracy against throughput (every run); colour: eta, line style or marker: correction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    etas = sorted({p.eta for p in points})
    colours = {eta: plt.cm.viridis(i / max(1, len(etas) - 1)) for i, eta in enumerate(etas)}
    figure, (by_step, by_time, accuracy) = plt.subplots(1, 3, figsize=(16, 4.5))
    for point in points:
        if point.seed != 0:
            continue
        rows = read_metrics(out / point.name / "metrics.jsonl")
        smooth = moving_average([m[names.REWARD_MEAN] for m in rows], SMOOTHING)
        style = {"color": colours[point.eta], "linestyle": LINE_STYLES.get(point.correction, "-"), "linewidth": 1.5}
        label = f"eta={point.eta}, {point.correction}"
        by_step.plot([m["step"] for m in rows], smooth, label=label, **style)
        by_time.plot([m[names.TIME_ELAPSED_S] for m in rows], smooth, **style)
    markers = {"none": "o", "tis": "s", "mask": "D", "decoupled": "^"}
    for r in results:
        accuracy.errorbar(
            [r.groups_per_s],
            [r.heldout],
            yerr=[r.heldout_stderr],
            fmt=markers.get(r.correction, "o"),
            color=colours[r.eta],
            capsize=3,
            alpha=1.0 if r.seed == 0 else 0.5,
        )
    by_step.set_xlabel("learner step")
    by_time.set_xlabel("wall-clock time (s)")
    for axis in (by_step, by_time):
        axis.set_ylabel(f"reward ({SMOOTHING}-step mean)")
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
    by_step.legend(fontsize=7, ncol=2, loc="lower right")
    accuracy.set_xlabel("throughput (groups/s)")
    accuracy.set_ylabel("held-out accuracy (± s.e.)")
    shapes = {"o": "circle", "s": "square", "D": "diamond", "^": "triangle"}
    shown = dict.fromkeys(p.correction for p in points)
    accuracy.set_title(
        ", ".join(f"{shapes[markers[c]]}: {c}" for c in shown) + "\ncolour: eta; faint: other seeds", fontsize=9
    )
    accuracy.grid(alpha=0.3)
    figure.suptitle("Staleness bound eta x off-policy correction on the bundled task")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
