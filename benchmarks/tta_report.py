"""The time-to-accuracy benchmark's table and plot (benchmarks/time_to_accuracy.py)."""

from __future__ import annotations

import statistics
from pathlib import Path


def speedups(baseline: list, runs: list, target: float) -> list[float | None]:
    """Seed by seed, the baseline's seconds to `target` over the run's (None where either never reached it)."""
    out = []
    for base, run in zip(baseline, runs, strict=True):
        a, b = base.reached(target), run.reached(target)
        out.append(a[0] / b[0] if a and b and b[0] > 0 else None)
    return out


def tta_table(by_setting: dict[str, list], target: float) -> str:
    """One row per setting; the first setting is the baseline of the last column."""
    baseline_label, baseline = next(iter(by_setting.items()))
    lines = [
        f"| setting | reached {target} | seconds to {target} (per seed) | steps to {target} (per seed) | final "
        "held-out (per seed) "
        f"| groups/s | times sooner than {baseline_label}: mean (min-max) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, runs in by_setting.items():
        reached = [run.reached(target) for run in runs]
        seconds = [r[0] for r in reached if r]
        times = " / ".join(f"{r[0]:.0f}" if r else "not reached" for r in reached)
        steps = " / ".join(str(r[1]) if r else "-" for r in reached)
        finals = " / ".join(f"{run.final:.2f}" for run in runs)
        rate = statistics.fmean(run.groups_per_s for run in runs)
        ratios = speedups(baseline, runs, target)
        known = [r for r in ratios if r is not None]
        sooner = (
            "-"
            if label == baseline_label or not known
            else (
                f"{statistics.fmean(known):.2f}x ({min(known):.2f}-{max(known):.2f})"
                + ("" if len(known) == len(ratios) else f", {len(known)} of {len(ratios)} seeds")
            )
        )
        mean = f"{statistics.fmean(seconds):.0f}: " if seconds else ""
        lines.append(
            f"| {label} | {len(seconds)} of {len(runs)} | {mean}{times} | {steps} | {finals} | {rate:.2f} | {sooner} |"
        )
    return "\n".join(lines)


def plot_tta(by_setting: dict[str, list], target: float, path: Path) -> Path:
    """Held-out accuracy against wall-clock time: per setting, the mean over seeds (interpolated on
    a common time grid, up to where every seed has points) and the band between their least and most."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for label, runs in by_setting.items():
        end = min(run.elapsed_s[-1] for run in runs)
        grid = np.linspace(0.0, end, 200)
        curves = np.stack([np.interp(grid, run.elapsed_s, run.accuracy) for run in runs])
        (line,) = axis.plot(grid, curves.mean(axis=0), linewidth=2, label=f"{label} (mean of {len(runs)} seeds)")
        axis.fill_between(grid, curves.min(axis=0), curves.max(axis=0), color=line.get_color(), alpha=0.15)
    axis.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target}")
    axis.set_xlabel("wall-clock time since the run started (s)")
    axis.set_ylabel("held-out accuracy (subset, while training)")
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
