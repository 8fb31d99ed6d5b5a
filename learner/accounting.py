"""Rank 0's account of every caption group: what each step took, and the run's summary.

Every group is named by its actor and its prompt's stream position (wire/progress.py). The
ledger records, per actor, the positions the learner has taken (trained on, or dropped as stale
or uniform); it goes into every checkpoint, so a resumed run's actors regenerate exactly the
prompts that had not been taken. `consumed.jsonl` in the run directory lists each step's groups.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from wire.progress import ShardProgress
from wire.scored_group import ScoredGroup

log = logging.getLogger(__name__)

# Why a group taken from the replay queue was not trained on.
DROP_REASONS = ("stale", "uniform")


@dataclass
class Ledger:
    consumed: dict[int, ShardProgress] = field(default_factory=dict)  # actor id -> positions taken
    trained: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    # Positions taken twice. The replay queue drops a second arrival, so this stays 0; counted
    # here as the independent check the summary reports.
    twice: int = 0

    def take(self, group: ScoredGroup, dropped_as: str | None = None) -> None:
        if not self.consumed.setdefault(group.actor_id, ShardProgress()).add(group.prompt_position):
            self.twice += 1
            log.error("actor %d's prompt position %d was taken twice", group.actor_id, group.prompt_position)
        if dropped_as is None:
            self.trained += 1
        else:
            self.dropped[dropped_as] += 1

    @property
    def taken(self) -> int:
        return self.trained + sum(self.dropped.values())

    def to_state(self) -> dict:
        return {
            "consumed": {str(actor): p.to_wire() for actor, p in self.consumed.items()},
            "trained": self.trained,
            "dropped": dict(self.dropped),
            "twice": self.twice,
        }

    @classmethod
    def from_state(cls, state: dict) -> Ledger:
        consumed = {int(actor): ShardProgress.from_wire(p) for actor, p in state["consumed"].items()}
        return cls(
            consumed, int(state["trained"]), {**dict.fromkeys(DROP_REASONS, 0), **state["dropped"]}, int(state["twice"])
        )


@dataclass(frozen=True)
class StepGroups:
    """The groups one step took: trained on, and dropped with the reason."""

    step: int
    trained: list[ScoredGroup]
    dropped: list[tuple[ScoredGroup, str]]

    def to_json(self) -> str:
        def name(group: ScoredGroup) -> list:
            return [group.actor_id, group.prompt_position, group.prompt_id]

        return json.dumps(
            {
                "step": self.step,
                "trained": [name(g) for g in self.trained],
                "dropped": [[*name(g), reason] for g, reason in self.dropped],
            }
        )


class ConsumedLog:
    """consumed.jsonl: one line per step, [actor, position, prompt id] of each group it took."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "consumed.jsonl"
        self._file = self.path.open("a", buffering=1)

    def write(self, groups: StepGroups) -> None:
        self._file.write(groups.to_json() + "\n")

    def close(self) -> None:
        self._file.close()


def keep_steps_before(path: Path, step: int) -> None:
    """Cut a per-step JSONL file (metrics, consumed groups, rollouts) back to the steps before
    `step`: a resumed run redoes the later ones, and its files then read as one run's."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] < step]
    path.write_text("".join(line + "\n" for line in lines))
