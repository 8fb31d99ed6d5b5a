"""The staleness gate: rollout actors ask it before generating each caption group.

With `max_staleness` = eta, no sample may update a policy more than eta versions newer than the
one that generated it (eta = 0 is synchronous on-policy training). The learner consumes
`groups_per_step` groups per step in arrival order, so the n-th admitted group (counting from
0, minus groups the learner dropped) is used by step n // groups_per_step, which updates
policy version n // groups_per_step. A group may therefore start only from weights of version
>= n // groups_per_step - eta; an actor with older weights waits for the next push. The
learner still checks every sample (arrival order can differ from admission order) and gives
back the admissions of the groups it drops.

The gate also knows how many admissions each actor holds (admitted, not given back by the actor
itself). When an actor dies, the admissions it held minus the groups the learner received from
it are groups that will never arrive; `reclaim` gives them back, and the restarted actor
regenerates their prompts (wire/progress.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True)
class GateStats:
    admitted: int
    given_back: int
    refused: int
    # Admissions given back because the actor holding them died (included in given_back).
    reclaimed: int = 0


class StalenessGate:
    def __init__(self, groups_per_step: int, max_staleness: int):
        if groups_per_step < 1 or max_staleness < 0:
            raise ValueError("groups_per_step must be >= 1 and max_staleness >= 0")
        self.groups_per_step = groups_per_step
        self.max_staleness = max_staleness
        self._admitted = 0  # admissions not given back: the index the next group will take
        self._given_back = 0
        self._refused = 0
        self._reclaimed = 0
        self._held: dict[int, int] = {}  # actor id -> admissions it holds

    def oldest_admissible_version(self) -> int:
        return self._admitted // self.groups_per_step - self.max_staleness

    def try_admit(self, actor_version: int) -> bool:
        if actor_version < self.oldest_admissible_version():
            self._refused += 1
            return False
        self._admitted += 1
        return True

    def admit_up_to(self, actor_version: int, count: int, actor_id: int | None = None) -> int:
        """Admit up to `count` groups one by one, stopping at the first refusal; how many."""
        admitted = 0
        while admitted < count and self.try_admit(actor_version):
            admitted += 1
        if actor_id is not None:
            self._held[actor_id] = self._held.get(actor_id, 0) + admitted
        return admitted

    def give_back(self, count: int, actor_id: int | None = None) -> None:
        """`count` admitted groups will not be used (the learner dropped them, or `actor_id` could
        not have them scored); their places go to new ones."""
        if count < 0 or count > self._admitted:
            raise ValueError(f"cannot give back {count} of {self._admitted} admissions")
        if actor_id is not None:
            held = self._held.get(actor_id, 0)
            if count > held:
                raise ValueError(f"actor {actor_id} cannot give back {count} admissions: it holds {held}")
            self._held[actor_id] = held - count
        self._admitted -= count
        self._given_back += count

    def reclaim(self, actor_id: int, delivered: int) -> int:
        """Actor `actor_id` died having delivered `delivered` groups in all: give back the
        admissions it held beyond those (groups that will never arrive); how many."""
        lost = self._held.get(actor_id, 0) - delivered
        if lost < 0:
            raise ValueError(
                f"actor {actor_id} delivered {delivered} groups but was admitted {self._held.get(actor_id, 0)}"
            )
        self.give_back(lost, actor_id)
        self._reclaimed += lost
        return lost

    def restore(self, stats: GateStats, held: dict[int, int]) -> None:
        """Continue a resumed run: its counters, and what each actor had delivered when it stopped."""
        self._admitted, self._given_back = stats.admitted, stats.given_back
        self._refused, self._reclaimed = stats.refused, stats.reclaimed
        self._held = dict(held)

    def stats(self) -> GateStats:
        return GateStats(self._admitted, self._given_back, self._refused, self._reclaimed)


class GateActor:
    """The gate as an asynchronous Ray actor shared by every rollout actor and the learner."""

    def __init__(self, groups_per_step: int, max_staleness: int):
        self._gate = StalenessGate(groups_per_step, max_staleness)

    async def admit_up_to(self, actor_version: int, count: int, actor_id: int | None = None) -> int:
        # One call for an actor's whole engine call: a Ray call per group cost the actor's
        # core more than the admission itself.
        return self._gate.admit_up_to(actor_version, count, actor_id)

    async def give_back(self, count: int, actor_id: int | None = None) -> None:
        self._gate.give_back(count, actor_id)

    async def reclaim(self, actor_id: int, delivered: int) -> int:
        return self._gate.reclaim(actor_id, delivered)

    async def restore(self, stats: GateStats, held: dict[int, int]) -> None:
        self._gate.restore(stats, held)

    async def stats(self) -> GateStats:
        await asyncio.sleep(0)
        return self._gate.stats()
