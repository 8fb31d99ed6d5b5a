"""The staleness gate: rollout actors ask it before generating each caption group.

With `max_staleness` = eta, no sample may update a policy more than eta versions newer than the
one that generated it (eta = 0 is synchronous on-policy training). The learner consumes
`groups_per_step` groups per step in arrival order, so the n-th admitted group (counting from
0, minus groups the learner dropped) is used by step n // groups_per_step, which updates
policy version n // groups_per_step. A group may therefore start only from weights of version
>= n // groups_per_step - eta; an actor with older weights waits for the next push. The
learner still checks every sample (arrival order can differ from admission order) and gives
back the admissions of the groups it drops.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True)
class GateStats:
    admitted: int
    given_back: int
    refused: int


class StalenessGate:
    def __init__(self, groups_per_step: int, max_staleness: int):
        if groups_per_step < 1 or max_staleness < 0:
            raise ValueError("groups_per_step must be >= 1 and max_staleness >= 0")
        self.groups_per_step = groups_per_step
        self.max_staleness = max_staleness
        self._admitted = 0  # admissions not given back: the index the next group will take
        self._given_back = 0
        self._refused = 0

    def oldest_admissible_version(self) -> int:
        return self._admitted // self.groups_per_step - self.max_staleness

    def try_admit(self, actor_version: int) -> bool:
        if actor_version < self.oldest_admissible_version():
            self._refused += 1
            return False
        self._admitted += 1
        return True

    def admit_up_to(self, actor_version: int, count: int) -> int:
        """Admit up to `count` groups one by one, stopping at the first refusal; how many."""
        admitted = 0
        while admitted < count and self.try_admit(actor_version):
            admitted += 1
        return admitted

    def give_back(self, count: int) -> None:
        """The learner dropped `count` admitted groups; their places go to new ones."""
        if count < 0 or count > self._admitted:
            raise ValueError(f"cannot give back {count} of {self._admitted} admissions")
        self._admitted -= count
        self._given_back += count

    def stats(self) -> GateStats:
        return GateStats(admitted=self._admitted, given_back=self._given_back, refused=self._refused)


class GateActor:
    """The gate as an asynchronous Ray actor shared by every rollout actor and the learner."""

    def __init__(self, groups_per_step: int, max_staleness: int):
        self._gate = StalenessGate(groups_per_step, max_staleness)

    async def admit_up_to(self, actor_version: int, count: int) -> int:
        # One call for an actor's whole engine call: a Ray call per group cost the actor's
        # core more than the admission itself.
        return self._gate.admit_up_to(actor_version, count)

    async def give_back(self, count: int) -> None:
        self._gate.give_back(count)

    async def stats(self) -> GateStats:
        await asyncio.sleep(0)
        return self._gate.stats()
