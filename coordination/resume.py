"""Where roles (re)start: a rollout actor's run, an actor restarted after a death, a resumed run.

The driver and the supervisor hand these to the roles, and the learner hands them back, across
Ray between the run's own processes.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordination.gate import GateStats
from wire.progress import ShardProgress
from wire.scored_group import ActorCounters
from wire.weights import WeightSource


@dataclass(frozen=True)
class ActorStart:
    """Where a (re)started actor's run begins: a fresh run starts at the beginning."""

    # Stream positions the learner already has from this actor: they are not generated again.
    done: ShardProgress
    # Generate nothing before holding weights of at least this version (a resumed run's).
    min_version: int = 0
    # The totals of the actor's earlier life, continued (from its last group the learner got).
    counters: ActorCounters | None = None


@dataclass(frozen=True)
class RejoinPoint:
    """Where a restarted actor continues, as learner rank 0 recorded it."""

    received: ShardProgress  # its prompt positions that reached the replay queue
    counters: ActorCounters | None  # from the last group it sent; None before any

    def actor_start(self) -> ActorStart:
        return ActorStart(done=self.received, counters=self.counters)


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run continues, for the roles started after the learner."""

    policy_version: int
    steps_done: int
    # Per actor: the prompt positions the learner had taken (its actors skip them).
    taken: dict[int, ShardProgress]
    gate: GateStats
    actor_counters: dict[int, ActorCounters]

    def actor_start(self, actor_id: int) -> ActorStart:
        """Actor `actor_id`'s start: past what the learner took, on the checkpoint's weights."""
        return ActorStart(
            self.taken.get(actor_id, ShardProgress()), self.policy_version, self.actor_counters.get(actor_id)
        )

    def gate_held(self) -> dict[int, int]:
        """What each actor had delivered when the run stopped (the gate's admissions held)."""
        return {actor: len(positions) for actor, positions in self.taken.items()}


@dataclass(frozen=True)
class LearnerReady:
    """What learner rank 0's setup tells the roles started after it (the other ranks: None)."""

    replay_endpoint: str  # where the actors send their scored groups
    weight_source: WeightSource  # where they take the published weights
    resumed: ResumePoint | None = None  # a resumed run's: where it continues
