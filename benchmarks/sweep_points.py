"""A point of the staleness sweep (eta, correction, seed: its config and run name) and what its
run measured; shared by the sweep, its report and the time-to-accuracy benchmark."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from benchmarks.pipeline import with_changes
from configs.schema import TrainConfig


@dataclass(frozen=True)
class SweepPoint:
    eta: int
    correction: str
    seed: int = 0

    @property
    def name(self) -> str:
        return f"eta{self.eta}-{self.correction}-seed{self.seed}"

    def config(self, base: TrainConfig, run_dir: Path) -> TrainConfig:
        correction = dataclasses.replace(base.learner.correction, kind=self.correction)
        changed = with_changes(base, learner={"max_staleness": self.eta, "correction": correction})
        return dataclasses.replace(changed, seed=self.seed, run_dir=str(run_dir))


@dataclass(frozen=True)
class PointResult:
    """One trained point: its speed, its staleness and what it learned."""

    eta: int
    correction: str
    seed: int
    groups_per_s: float
    seconds_per_step: float
    reward_last: float  # mean reward of the last 20% of the steps
    staleness_mean: float
    staleness_max: int
    dropped_stale: int
    corrected_fraction: float  # tokens truncated (tis), masked or capped (decoupled), mean over steps
    weight_max: float  # largest importance weight of the run
    heldout: float = float("nan")
    heldout_stderr: float = float("nan")
