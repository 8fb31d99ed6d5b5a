"""A reasoner that never answers: each scoring try ends at rollout.score_timeout_s and is retried;
after the last try the group is given up, its admission given back, and the actor goes on."""

import asyncio
from types import SimpleNamespace

from actors.episodes import CaptionEpisode
from actors.rollout import RolloutActor, RolloutStats
from configs.schema import RolloutConfig
from coordination.handles import PoolHandle
from records.vqa import VQARecord
from wire.scoring import ScoreRequest, ScoreResult


class _Replica:
    """The edge of this unit test: a Serve handle whose replica hangs on its first `hangs` calls."""

    def __init__(self, hangs: int):
        self.calls, self.hangs = 0, hangs
        self.score = SimpleNamespace(remote=self._call)

    async def _call(self, request: ScoreRequest) -> ScoreResult:
        self.calls += 1
        if self.calls <= self.hangs:
            await asyncio.sleep(3600)
        return ScoreResult(rewards=(1.0,), answers=(("\\boxed{1}",),), latency_s=0.0, answers_refused=1)


def _actor(replica: _Replica, attempts: int) -> RolloutActor:
    actor = RolloutActor.__new__(RolloutActor)  # no engine or dataset: only the scoring path runs
    actor.config = RolloutConfig(score_attempts=attempts, score_retry_backoff_s=0.0, score_timeout_s=0.2)
    actor.stats, actor.pool = RolloutStats(), PoolHandle(replica)
    actor.episode = CaptionEpisode(actor)
    return actor


def _prompt():
    return SimpleNamespace(record=VQARecord("p1", "a.png", "How many?", "1"), position=0)


def _score(actor: RolloutActor):
    return asyncio.run(actor._score(_prompt(), [SimpleNamespace(text="a red dot", token_ids=[5, 6, 7])]))


def test_a_hanging_try_times_out_and_the_retry_gets_the_answer():
    replica = _Replica(hangs=2)
    result = _score(_actor(replica, attempts=3))
    assert result is not None and result.rewards == (1.0,)
    assert replica.calls == 3


def test_every_try_hanging_gives_the_group_up_counted():
    replica = _Replica(hangs=10)
    actor = _actor(replica, attempts=2)
    assert _score(actor) is None
    assert replica.calls == 2 and actor.stats.score_failures == 2


def test_a_result_counts_its_refused_answers():
    actor = _actor(_Replica(hangs=1), attempts=2)
    _score(actor)
    assert (actor.stats.score_failures, actor.stats.answers_refused) == (1, 1)
