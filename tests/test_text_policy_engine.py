"""The engine contract for a text policy (policy.role=reasoner), on both engines: the reasoner
samples answers from chat prompts, the learner reproduces their behaviour logprobs from the ids
the group carries (no image), and a published update changes what it samples to exactly the
published weights' distribution. Tolerances as in test_engine_conformance.py."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from actors.engine import CaptionRequest, SamplingSettings, TextPrompt, close_event_loop
from actors.engine_factory import make_caption_engine
from configs.schema import SamplingConfig, VllmConfig
from learner.batching import group_batch
from learner.logprobs import sequence_logprobs
from learner.weight_publisher import weight_update
from tests.test_engine_conformance import TOLERANCE
from vlm.reasoner_prompt import encode_reasoner_prompt
from vlm.sampling import caption_sampling_spec
from wire.scored_group import COUNTER_NAMES, ActorCounters, GroupTimings, ScoredGroup

N = 4
PROMPTS = (
    ("top left: a red circle. bottom right: a blue square.", "How many red objects are there?"),
    ("", "How many squares are there?"),
)


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    close_event_loop(loop)


@pytest.fixture(scope="module")
def reasoner(tiny_bundle) -> str:
    return str(tiny_bundle.reasoner)


@pytest.fixture(scope="module", params=("transformers", "vllm"))
def engine(request, reasoner, loop):
    async def build():  # inside the loop, as `make_caption_engine` asks
        return make_caption_engine(request.param, reasoner, VllmConfig(), seed=0, text_only=True)

    engine = loop.run_until_complete(build())
    yield engine
    engine.close()


def _requests(tokenizer) -> list[CaptionRequest]:
    return [
        CaptionRequest(
            f"q{i}", TextPrompt(np.asarray(encode_reasoner_prompt(tokenizer, caption, question), dtype=np.int32))
        )
        for i, (caption, question) in enumerate(PROMPTS)
    ]


def _learner_logprobs(model, request: CaptionRequest, group, sampling: SamplingSettings) -> list[np.ndarray]:
    scored = ScoredGroup(
        group_id="g",
        prompt_id=request.prompt_id,
        actor_id=0,
        prompt_position=0,
        prompt_token_ids=request.prompt.input_ids,
        image_png=b"",
        completion_ids=tuple(s.token_ids for s in group),
        behaviour_logprobs=tuple(s.logprobs for s in group),
        token_versions=tuple(s.token_versions for s in group),
        rewards=np.zeros(len(group), dtype=np.float32),
        answers=((),) * len(group),
        timings=GroupTimings(0.0, 0.0, 0.0),
        counters=ActorCounters(**dict.fromkeys(COUNTER_NAMES, 0)),
    )
    batch = group_batch(scored, None, torch.zeros(len(group)), 0)
    with torch.no_grad():
        logp = sequence_logprobs(model, batch, sampling.spec)
    return [logp[i, : len(s.token_ids)].numpy() for i, s in enumerate(group)]


def _check_against(model, engine, loop, config: SamplingConfig) -> None:
    sampling = SamplingSettings(caption_sampling_spec(config, engine.tokenizer), n=N, max_new_tokens=12, seed=7)
    requests = _requests(engine.tokenizer)
    groups = loop.run_until_complete(engine.generate(requests, sampling))
    assert [len(g) for g in groups] == [N] * len(requests)
    for request, group in zip(requests, groups):
        for sample, expected in zip(group, _learner_logprobs(model, request, group, sampling)):
            assert sample.text == engine.tokenizer.decode(sample.token_ids, skip_special_tokens=True)
            assert (sample.token_versions == engine.policy_version).all()
            np.testing.assert_allclose(sample.logprobs, expected, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize(
    "config", [SamplingConfig(), SamplingConfig(temperature=0.7, top_k=5, top_p=0.9)], ids=["full", "truncated"]
)
def test_text_policy_behaviour_logprobs_equal_the_learners(engine, reasoner, loop, config):
    assert isinstance(engine.tokenizer, type(AutoTokenizer.from_pretrained(reasoner)))
    _check_against(AutoModelForCausalLM.from_pretrained(reasoner).eval(), engine, loop, config)


def test_text_policy_samples_from_published_weights(engine, reasoner, loop):
    model = AutoModelForCausalLM.from_pretrained(reasoner).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    trainable = {name: p.detach().clone() for name, p in model.named_parameters()}
    version = engine.policy_version + 1
    loop.run_until_complete(engine.update_weights(weight_update(version, trainable)))
    assert engine.policy_version == version
    _check_against(model, engine, loop, SamplingConfig())
