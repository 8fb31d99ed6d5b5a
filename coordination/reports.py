"""What the learner's remote surface reports to the driver and the supervisor: its account of the
run's groups and its latest step (where roles restart: coordination/resume.py).

They cross Ray between the run's own processes (Ray pickles them; nothing from the network is
unpickled: groups and weights travel as msgpack, wire/). Files written from them (summary.json,
checkpoints) convert them at the file's edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from wire import metric_names as names
from wire.scored_group import ActorCounters


@dataclass(frozen=True)
class GroupAccount:
    """Learner rank 0's account of the run's groups so far (the run summary's learner part)."""

    steps: int
    policy_version: int
    groups_accepted: int  # by the replay queue
    groups_consumed: int  # trained on
    # Taken but not trained on, by reason: "stale", "uniform" (learner/accounting.py) and
    # "duplicate" (a prompt position that had arrived before, dropped by the queue).
    groups_dropped: dict[str, int]
    groups_buffered_at_end: int
    # Accepted into the queue but neither taken by a step nor waiting there: must be 0.
    groups_lost: int
    groups_duplicated: int  # a prompt position trained on twice: must be 0
    frames_rejected: int
    frames_rejected_by_reason: dict[str, int] = field(default_factory=dict)
    # Each actor's counters, from the last group the learner received from it.
    actors: dict[int, ActorCounters] = field(default_factory=dict)

    def actor_total(self, name: str) -> int:
        """An actor counter summed over the actors."""
        return sum(getattr(counters, name) for counters in self.actors.values())


@dataclass(frozen=True)
class StepMetrics:
    """The learner's latest step: its metrics.jsonl row (keys in wire/metric_names.py), with the
    newest held-out accuracy measured while training. Empty before the first step."""

    row: dict[str, float | int] = field(default_factory=dict)

    @property
    def step(self) -> int:
        """The step reported; -1 before the first."""
        return int(self.row.get(names.STEP, -1))

    @property
    def policy_version(self) -> int:
        return int(self.row.get(names.POLICY_VERSION, 0))

    @property
    def reward_mean(self) -> float:
        return float(self.row.get(names.REWARD_MEAN, math.nan))

    @property
    def staleness_mean(self) -> float:
        return float(self.row.get(names.STALENESS_MEAN, math.nan))

    @property
    def captions_per_s(self) -> float:
        return float(self.row.get(names.THROUGHPUT_CAPTIONS_PER_S, math.nan))

    @property
    def heldout_accuracy(self) -> float | None:
        """The newest held-out accuracy (eval.every_steps); None before the first evaluation."""
        value = self.row.get(names.EVAL_ACCURACY)
        return None if value is None else float(value)

    def get(self, name: str, default: float | int = 0) -> float | int:
        """Any metric of the row by its name (wire/metric_names.py)."""
        return self.row.get(name, default)


@dataclass(frozen=True)
class MetricsRows:
    """Rows of rank 0's metrics.jsonl written after byte `offset` was read, and where the next
    read starts: how the driver follows every row wherever the learner runs."""

    rows: list[dict]
    offset: int
