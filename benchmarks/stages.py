"""Each pipeline stage alone at full speed, with the processes and cores it has in the pipeline.

- generation: the rollout actors generate and nothing else (no scoring, no weight sync);
- scoring: the reasoner pool scores those captions, as many groups in flight as the actors can
  have out at once (num_actors x max_groups_scoring);
- learner: the learner trains from a replay queue kept full by this process, on those groups.

Each returns groups per second over what followed its warm-up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zmq

from configs.commands import BenchCommandConfig
from learner.metrics import read_metrics
from wire.metric_names import STEP, TIME_ELAPSED_S
from wire.scored_group import ScoredGroup, encode_group
from wire.scoring import ScoreRequest

if TYPE_CHECKING:
    from coordination.handles import LearnerHandle, RolloutHandle

# Groups the stage runs before it is timed (model warm-up, first batches).
WARMUP_CALLS = 2


@dataclass(frozen=True)
class StageRate:
    groups: int
    seconds: float

    @property
    def groups_per_s(self) -> float:
        return self.groups / self.seconds


def generation_alone(
    actors: list[RolloutHandle], calls: int
) -> tuple[StageRate, list[tuple[ScoreRequest, ScoredGroup]]]:
    """Every actor runs `calls` engine calls at once (after a warm-up); the groups they made."""
    import ray

    ray.get([a.generate_alone_ref(WARMUP_CALLS) for a in actors])
    results = ray.get([a.generate_alone_ref(calls) for a in actors])
    groups = [g for _, made in results for g in made]
    # The actors ran side by side: the stage took as long as the slowest of them.
    return StageRate(len(groups), max(seconds for seconds, _ in results)), groups


def scoring_alone(app_name: str, requests: list[ScoreRequest], in_flight: int) -> tuple[StageRate, list]:
    """The pool scores `requests` with up to `in_flight` at once (after a warm-up); the results in order."""
    from coordination.handles import PoolHandle

    pool = PoolHandle.of_app(app_name)

    async def score_all(batch: list[ScoreRequest]) -> list:
        slots = asyncio.Semaphore(in_flight)

        async def one(request: ScoreRequest):
            async with slots:
                return await pool.score(request)

        return await asyncio.gather(*(one(r) for r in batch))

    asyncio.run(score_all(requests[: WARMUP_CALLS * in_flight]))
    started = time.perf_counter()
    results = asyncio.run(score_all(requests))
    return StageRate(len(requests), time.perf_counter() - started), results


class ReplayFeeder:
    """Keeps the learner's replay queue full: sends `count` groups, cycling through `groups`, from a
    thread of this process. The queue's backpressure paces it. Each send is a new group: a fresh id
    and its own prompt position (the queue drops a position that arrives twice, so reusing a
    generated group's position would leave the learner waiting for groups that never come)."""

    def __init__(self, endpoint: str, groups: list[ScoredGroup], count: int):
        self._socket = zmq.Context.instance().socket(zmq.PUSH)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(endpoint)
        frames = [encode_group(resent(groups[i % len(groups)], i)) for i in range(count)]
        self._thread = threading.Thread(target=lambda: [self._socket.send(f) for f in frames], daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._thread.join(timeout=1)
        self._socket.close(linger=0)


def resent(group: ScoredGroup, position: int) -> ScoredGroup:
    """`group` sent again as the feeder's `position`-th send: a position no other send has."""
    return dataclasses.replace(group, group_id=uuid.uuid4().hex, prompt_position=position)


def learner_alone(
    learners: list[LearnerHandle], endpoint: str, groups: list[ScoredGroup], config: BenchCommandConfig, run_dir: Path
) -> StageRate:
    """The learner's steps from a queue kept full, timed from the end of its warm-up steps."""
    import ray

    feeder = ReplayFeeder(endpoint, groups, config.learner.total_steps * config.learner.groups_per_step)
    try:
        ray.get([rank.train_ref() for rank in learners])
    finally:
        feeder.close()
    return measured_rate(
        read_metrics(run_dir / "metrics.jsonl"), config.bench.warmup_steps, config.learner.groups_per_step
    )


def measured_rate(rows: list[dict], warmup_steps: int, groups_per_step: int) -> StageRate:
    """Groups per second of a run's steps after `warmup_steps`, from its metrics' step end times."""
    if len(rows) <= warmup_steps:
        raise ValueError(f"{len(rows)} steps in the metrics, need more than the {warmup_steps} warm-up steps")
    start, end = rows[warmup_steps - 1], rows[-1]
    steps = end[STEP] - start[STEP]
    return StageRate(steps * groups_per_step, end[TIME_ELAPSED_S] - start[TIME_ELAPSED_S])


def with_rewards(groups: list[ScoredGroup], results: list) -> list[ScoredGroup]:
    """The generated groups with the rewards and answers their scoring gave."""
    return [
        dataclasses.replace(g, rewards=np.asarray(r.rewards, dtype=np.float32), answers=r.answers)
        for g, r in zip(groups, results)
    ]
