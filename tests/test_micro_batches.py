"""The learner's passes: each group's image encoded once for its G captions, and several groups
in one micro-batch, give the logprobs and the gradients of one group per pass with the image's
patches repeated per caption (the learner before both changes), to float summation order (the
rank tests' tolerance, 1e-5)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from configs.schema import CorrectionConfig, LearnerConfig
from learner import shared_vision
from learner.batching import PolicyBatch, group_batch, packed
from learner.distributed import micro_batches_per_step
from learner.grpo import grpo_loss
from learner.logprobs import sequence_logprobs
from learner.policy_model import load_policy_model, load_policy_processor
from tests.test_ranks import make_groups
from vlm.sampling import SamplingSpec

SPEC = SamplingSpec(temperature=1.0, top_k=0, top_p=1.0, suppressed_token_ids=())
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def groups(tiny_bundle):
    return make_groups(str(tiny_bundle.captioner), str(tiny_bundle.train_file))


def _batches(role: str, checkpoint: str, groups) -> list[PolicyBatch]:
    processor, tokenizer = load_policy_processor(role, checkpoint)
    advantages = torch.tensor([[1.0, -1.0, -1.0, 1.0]] * len(groups))
    return [group_batch(g, processor, advantages[i], tokenizer.pad_token_id) for i, g in enumerate(groups)]


def _step_loss_and_grads(model, micro_batches: list[PolicyBatch]) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Each micro-batch's logprobs, and the gradient of the step's loss (the token mean over all)."""
    model.zero_grad()
    total = sum(float(b.completion_mask.sum()) for b in micro_batches)
    logps = []
    for batch in micro_batches:
        logp = sequence_logprobs(model, batch, SPEC)
        loss, _ = grpo_loss(
            logp,
            batch.behaviour_logprobs,
            None,
            batch.advantages,
            batch.completion_mask,
            clip_low=0.2,
            clip_high=0.2,
            correction=CorrectionConfig(),
            kl_coef=0.0,
            total_tokens=total,
        )
        loss.backward()
        logps.append(logp.detach())
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logps, grads


def _assert_same_grads(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys() and want
    worst = max(float((got[n] - want[n]).abs().max()) for n in want)
    assert worst < TOLERANCE, f"gradients differ by up to {worst}"
    assert max(float(g.abs().max()) for g in want.values()) > 100 * TOLERANCE  # a gradient there was to compare


@pytest.mark.parametrize("freeze_vision", [True, False], ids=["frozen vision", "trained vision"])
def test_an_image_encoded_once_per_group_changes_no_logprob_and_no_gradient(
    tiny_bundle, groups, monkeypatch, freeze_vision
):
    model = load_policy_model("captioner", str(tiny_bundle.captioner), "fp32", freeze_vision)
    batches = _batches("captioner", str(tiny_bundle.captioner), groups[:2])
    # One image per group, not one per caption.
    assert [int(b.pixel_values.shape[0]) for b in batches] == [int(b.image_grid_thw[0].prod()) for b in batches]
    encoded = []
    visual = model.model.visual
    hook = visual.register_forward_hook(lambda module, args, out: encoded.append(int(args[0].shape[0])))
    once_logp, once_grads = _step_loss_and_grads(model, batches)
    hook.remove()
    assert encoded == [int(b.pixel_values.shape[0]) for b in batches]
    # The learner before: every caption's copy of the patches through the vision tower.
    monkeypatch.setattr(shared_vision, "_takes_encoder_outputs", lambda model_class: False)
    repeated_logp, repeated_grads = _step_loss_and_grads(model, batches)
    for once, repeated in zip(once_logp, repeated_logp):
        torch.testing.assert_close(once, repeated, atol=TOLERANCE, rtol=0)
    _assert_same_grads(once_grads, repeated_grads)
    if not freeze_vision:
        assert any(name.startswith("model.visual.") for name in once_grads)


@pytest.mark.parametrize("role", ["captioner", "reasoner"])
def test_several_groups_in_one_micro_batch_change_no_logprob_and_no_gradient(tiny_bundle, groups, role):
    checkpoint = str(tiny_bundle.captioner if role == "captioner" else tiny_bundle.reasoner)
    groups = [_cut(groups[0], 3), *groups[1:]]
    if role == "reasoner":
        groups = [_as_text_group(g, i) for i, g in enumerate(groups)]
    else:
        groups = [groups[0], _asked_at_length(groups[1], checkpoint), *groups[2:]]
    batches = _batches(role, checkpoint, groups)
    # The groups' prompts and completions differ in length, so packing pads both ways.
    assert len({b.prompt_len for b in batches}) > 1 and len({b.completion_ids.shape[1] for b in batches}) > 1
    model = load_policy_model(role, checkpoint, "fp32", freeze_vision=True)
    one_logp, one_grads = _step_loss_and_grads(model, batches)
    pad_id = load_policy_processor(role, checkpoint)[1].pad_token_id
    pairs = [packed(batches[i : i + 2], pad_id) for i in range(0, len(batches), 2)]
    pair_logp, pair_grads = _step_loss_and_grads(model, pairs)
    for i, batch in enumerate(batches):
        pair, row = pair_logp[i // 2], (i % 2) * len(batch.advantages)
        got = pair[row : row + len(batch.advantages), : batch.completion_ids.shape[1]]
        torch.testing.assert_close(got, one_logp[i], atol=TOLERANCE, rtol=0)
    _assert_same_grads(pair_grads, one_grads)


def _cut(group, length: int):
    """The group with its completions cut to at most `length` tokens."""
    return dataclasses.replace(
        group,
        completion_ids=tuple(c[:length] for c in group.completion_ids),
        behaviour_logprobs=tuple(c[:length] for c in group.behaviour_logprobs),
        token_versions=tuple(c[:length] for c in group.token_versions),
    )


def _asked_at_length(group, captioner: str):
    """The group with a longer question about its image (the bundled questions encode alike)."""
    import io

    from PIL import Image

    from vlm.caption_prompt import encode_caption_prompt

    image = Image.open(io.BytesIO(group.image_png)).convert("RGB")
    question = "How many red objects are there in the top left and the bottom right of the image?"
    prompt = encode_caption_prompt(load_policy_processor("captioner", captioner)[0], question, image)
    return dataclasses.replace(group, prompt_token_ids=np.asarray(prompt.input_ids, dtype=np.int32))


def _as_text_group(group, index: int):
    """The group as a text policy's (policy.role=reasoner): no image, prompts of different lengths."""
    prompt = np.arange(5, 12 + 3 * index, dtype=np.int32)
    return dataclasses.replace(group, prompt_token_ids=prompt, image_png=b"")


def test_micro_batches_per_step_cover_every_group_of_the_rank():
    # 8 groups on 2 ranks, 3 to a pass: each rank's 4 groups take 2 passes (3 + 1).
    assert micro_batches_per_step(LearnerConfig(num_ranks=2, groups_per_step=8, groups_per_micro_batch=3), 2) == 2
    assert micro_batches_per_step(LearnerConfig(groups_per_step=8), 1) == 8
    assert micro_batches_per_step(LearnerConfig(groups_per_step=8, groups_per_micro_batch=8), 1) == 1
