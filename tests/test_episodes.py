"""The rollout episodes (actors/episodes.py): one per policy role, each deciding what the pool is
asked and what the learner gets. The pool and the actor are stand-ins here (the edge of the unit);
tests/test_policy_roles.py and tests/test_launch.py run both episodes on real roles."""

import asyncio

import numpy as np

from actors.engine import CaptionSample
from actors.episodes import EPISODES, AnswerEpisode, CaptionEpisode, Prompt, score_request
from configs.schema import POLICY_ROLES
from records.vqa import VQARecord

RECORD = VQARecord(id="r1", image="r1.png", question="How many red circles are there?", answer="2")
PROMPT = Prompt(position=7, record=RECORD, request=None, image_png=b"png-bytes")
SAMPLES = [
    CaptionSample(
        text=t,
        token_ids=np.arange(n, dtype=np.int32),
        logprobs=np.zeros(n, np.float32),
        token_versions=np.zeros(n, np.int32),
    )
    for t, n in (("a red circle", 3), ("", 0))
]


class _Host:
    """An actor whose pool fails every call, as a pool with no live replica does."""

    engine = None
    pool = None

    def __init__(self):
        self.lost = 0

    async def call_pool(self, what, call):
        return None

    async def lose(self, count):
        self.lost += count


def test_every_policy_role_has_an_episode():
    assert set(EPISODES) == set(POLICY_ROLES)
    assert not EPISODES["captioner"].text_only and EPISODES["reasoner"].text_only


def test_a_text_only_policy_hands_the_learner_no_image():
    assert CaptionEpisode(_Host()).image_for_learner(PROMPT) == b"png-bytes"
    assert AnswerEpisode(_Host()).image_for_learner(PROMPT) == b""


def test_prompts_the_frozen_captioner_could_not_caption_are_lost_and_given_back():
    host = _Host()
    batch = [PROMPT, Prompt(8, RECORD, None, b"png-bytes")]
    assert asyncio.run(AnswerEpisode(host).prepared(batch)) == []
    assert host.lost == 2
    # A caption episode's prompts are ready as made: nothing asked, nothing lost.
    assert asyncio.run(CaptionEpisode(host).prepared(batch)) == batch and host.lost == 2


def test_a_group_the_pool_could_not_score_has_no_result():
    for episode in (CaptionEpisode(_Host()), AnswerEpisode(_Host())):
        assert asyncio.run(episode.score(PROMPT, SAMPLES)) is None


def test_a_caption_group_is_scored_by_its_captions_seeded_by_its_stream_position():
    request = score_request(PROMPT, SAMPLES)
    assert request.captions == ("a red circle", "") and request.caption_tokens == (3, 0)
    assert (request.question, request.gold_answer, request.seed) == (RECORD.question, "2", 7)
