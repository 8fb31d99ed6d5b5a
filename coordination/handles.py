"""Typed handles of the roles' remote surfaces: what a caller may ask of the staleness gate, a
learner rank, a rollout actor, the evaluator while training, the reasoner pool and the captioner
service, and what each answer is.

A handle wraps the Ray actor handle (or Serve deployment handle) and travels wherever that may:
into other actors' constructors and calls. Method names say how a call waits:
- `name()` waits for the answer and returns it;
- `name_ref()` returns the Ray ObjectRef at once: callers gather several, wait on them with a
  timeout (`ray.get(refs, timeout=...)`, `ray.wait`), await them in asyncio, or send and forget;
- the Serve deployments' methods are coroutines (a deployment's answer is awaited where it is
  asked for: in a rollout actor's or a replica's event loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray

from configs.schema import LearnerConfig
from coordination.gate import GateActor, GateStats
from coordination.reports import GroupAccount, MetricsRows, StepMetrics
from coordination.resume import ActorStart, RejoinPoint
from wire.eval_points import EvalPoint
from wire.inference import DescribeRequest, Description
from wire.scoring import AnswerScoreRequest, ScoreRequest, ScoreResult


class GateHandle:
    """The staleness gate (coordination/gate.py), one actor shared by the actors and the learner."""

    def __init__(self, actor):
        self.actor = actor  # the Ray actor handle (placement, ray.kill)

    def admit_up_to_ref(self, actor_version: int, count: int, actor_id: int | None = None) -> ray.ObjectRef:
        """-> int: how many of `count` groups from weights `actor_version` were admitted."""
        return self.actor.admit_up_to.remote(actor_version, count, actor_id)

    def give_back_ref(self, count: int, actor_id: int | None = None) -> ray.ObjectRef:
        """-> None: `count` admitted groups will not be used; their places go to new ones."""
        return self.actor.give_back.remote(count, actor_id)

    def reclaim(self, actor_id: int, delivered: int) -> int:
        """Dead actor `actor_id` delivered `delivered` groups: the admissions it held beyond those
        go back; how many."""
        return ray.get(self.actor.reclaim.remote(actor_id, delivered))

    def restore(self, stats: GateStats, held: dict[int, int]) -> None:
        ray.get(self.actor.restore.remote(stats, held))

    def stats(self) -> GateStats:
        return ray.get(self.stats_ref())

    def stats_ref(self) -> ray.ObjectRef:
        return self.actor.stats.remote()


def start_gate(config: LearnerConfig) -> GateHandle:
    """The run's staleness gate (no CPU of its own: it only counts)."""
    actor = ray.remote(GateActor).options(num_cpus=0).remote(config.groups_per_step, config.max_staleness)
    return GateHandle(actor)


class LearnerHandle:
    """A learner rank (learner/role.py `LearnerRank`); the reports come from rank 0."""

    def __init__(self, actor):
        self.actor = actor

    def node_address_ref(self) -> ray.ObjectRef:
        """-> (host, port): where rank 0 hosts the process group's rendezvous."""
        return self.actor.node_address.remote()

    def setup_ref(self, rendezvous) -> ray.ObjectRef:
        """-> LearnerReady on rank 0 (None on the others), once the rank is set up.
        `rendezvous`: rank 0's node_address (a value, or its ref)."""
        return self.actor.setup_rank.remote(rendezvous)

    def train_ref(self) -> ray.ObjectRef:
        """-> StepMetrics of the last step, once every step is done (or stop_after_step)."""
        return self.actor.train.remote()

    def latest_metrics(self) -> StepMetrics:
        return ray.get(self.actor.latest_metrics.remote())

    def accounting(self) -> GroupAccount:
        return ray.get(self.actor.accounting.remote())

    def metrics_rows(self, offset: int) -> MetricsRows:
        """Rank 0's metrics rows after byte `offset` of its metrics.jsonl (see MetricsRows)."""
        return ray.get(self.actor.metrics_rows.remote(offset))

    def rejoin_point(self, actor_id: int) -> RejoinPoint:
        return ray.get(self.actor.rejoin_point.remote(actor_id))

    def stop_after_step_ref(self) -> ray.ObjectRef:
        """-> None: end training after the step in progress (told to rank 0, which tells the rest)."""
        return self.actor.stop_after_step.remote()

    def close_ref(self) -> ray.ObjectRef:
        return self.actor.close.remote()


class RolloutHandle:
    """A rollout actor (actors/rollout.py `RolloutActor`)."""

    def __init__(self, actor):
        self.actor = actor

    def run_ref(self, start: ActorStart | None = None) -> ray.ObjectRef:
        """-> the actor's final stats: it generates until stop (from `start`, else the beginning)."""
        return self.actor.run.remote(start)

    def ready_ref(self) -> ray.ObjectRef:
        """-> its actor id, once constructed (after a restart, too)."""
        return self.actor.ready.remote()

    def stats_ref(self) -> ray.ObjectRef:
        """-> its running totals (actors/rollout.py `RolloutStats`); answered once it is built."""
        return self.actor.get_stats.remote()

    def generate_alone_ref(self, calls: int) -> ray.ObjectRef:
        """-> (seconds, [(ScoreRequest, unscored ScoredGroup)]): `calls` engine calls, nothing else."""
        return self.actor.generate_alone.remote(calls)

    def stop_ref(self) -> ray.ObjectRef:
        return self.actor.stop.remote()

    def close_ref(self) -> ray.ObjectRef:
        """-> None: its engine released (a vLLM engine runs in a process of its own)."""
        return self.actor.close.remote()


class EvaluatorHandle:
    """The evaluator while training (evaluation/during_training.py `TrainingEvaluator`)."""

    def __init__(self, actor):
        self.actor = actor

    def evaluate_ref(self, point: EvalPoint, weights: tuple | None) -> ray.ObjectRef:
        """-> EvalPointResult of the weights published at `point` (`weights`: a 1-tuple holding
        their ObjectRef, passed on to the engine unread; None: the initial weights)."""
        return self.actor.evaluate.remote(point, weights)

    def close_ref(self) -> ray.ObjectRef:
        return self.actor.close.remote()


@dataclass(frozen=True)
class EvalSchedule:
    """When the learner asks the evaluator for an evaluation: at the first published version at
    least `every_steps` after the last one evaluated, and for the final weights."""

    evaluator: EvaluatorHandle
    every_steps: int


class PoolHandle:
    """The reasoner pool (serve/pool.py `ReasonerPool`), through its Serve deployment handle."""

    def __init__(self, app):
        self.app = app  # the Serve deployment handle

    @classmethod
    def of_app(cls, app_name: str) -> PoolHandle:
        from ray import serve

        return cls(serve.get_app_handle(app_name))

    async def score(self, request: ScoreRequest) -> ScoreResult:
        return await self.app.score.remote(request)

    async def score_answers(self, requests: list[AnswerScoreRequest]) -> list[ScoreResult]:
        return await self.app.score_answers.remote(requests)

    async def captions(self, requests: list[DescribeRequest]) -> list[str]:
        """The frozen captioner's captions (a run training the reasoner)."""
        return await self.app.captions.remote(requests)

    def infer(self, question: str, image: bytes, seed: int | None = None) -> dict[str, str]:
        """The two-stage inference, waited for: caption, tentative_answer and answer."""
        return self.app.infer.remote(question, image, seed).result()


class CaptionServiceHandle:
    """The captioner as a Serve deployment (actors/caption_service.py `CaptionService`), which the
    pool asks for a two-stage answer's caption or a reasoner policy's prompts."""

    def __init__(self, app: Any):
        self.app = app

    async def describe(self, request: DescribeRequest) -> Description:
        return await self.app.describe.remote(request)

    async def captions(self, requests: list[DescribeRequest]) -> list[str]:
        return await self.app.captions.remote(requests)
