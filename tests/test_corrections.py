"""Off-policy corrections on hand-worked numbers (learner/corrections.py, grpo.policy_loss)."""

import math

import pytest
import torch

from configs.schema import CorrectionConfig
from learner.corrections import correction_weights
from learner.grpo import policy_loss

CLIP = dict(clip_low=0.2, clip_high=0.2)
# pi_prox = 1 on every token (logp 0); behaviour logprobs chosen so that pi_prox / pi_b is
# 1, 3, 0.25 and 10 on the four tokens.
BEHAVIOUR = torch.tensor([[0.0, -math.log(3.0), math.log(4.0), -math.log(10.0)]])
MASK = torch.ones(1, 4)


def _kind(kind: str) -> CorrectionConfig:
    return CorrectionConfig(kind=kind, dual_clip=3.0, tis_cap=2.0, mask_low=0.5, mask_high=2.0, decoupled_cap=5.0)


@pytest.mark.parametrize(
    "kind, weights, corrected",
    [
        # min(ratio, 2): 3 and 10 truncated to 2.
        ("tis", [1.0, 2.0, 0.25, 2.0], [False, True, False, True]),
        # 1 inside [0.5, 2], else 0: only the first token survives.
        ("mask", [1.0, 0.0, 0.0, 0.0], [False, True, True, True]),
        # the ratio itself, and 0 above 5: only the ratio-10 token dropped.
        ("decoupled", [1.0, 3.0, 0.25, 0.0], [False, False, False, True]),
    ],
)
def test_weights_of_each_kind(kind, weights, corrected):
    got = correction_weights(torch.zeros(1, 4), BEHAVIOUR, MASK, _kind(kind))
    torch.testing.assert_close(got.weights, torch.tensor([weights]))
    assert got.corrected.tolist() == [corrected]


@pytest.mark.parametrize("advantage", [1.0, -1.0])
def test_weighted_policy_gradient_and_stats(advantage):
    # tis, A = +-1: the ratio against pi_prox is 1 (its value is logp's own), so neither clip
    # binds and each token's loss is -A * w, its gradient -A * w.
    # Stats: ratio to pi_b mean (1 + 3 + 0.25 + 10) / 4 = 3.5625, max 10; weights mean
    # (1 + 2 + 0.25 + 2) / 4 = 1.3125, max 2; 2 of 4 tokens truncated.
    logp = torch.zeros(1, 4, requires_grad=True)
    loss, stats = policy_loss(logp, BEHAVIOUR, torch.tensor([advantage]), MASK, **CLIP, correction=_kind("tis"))
    w = torch.tensor([[1.0, 2.0, 0.25, 2.0]])
    torch.testing.assert_close(loss, -advantage * w)
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, -advantage * w)
    assert stats.ratio_mean == pytest.approx(3.5625, rel=1e-5)
    assert stats.ratio_max == pytest.approx(10.0, rel=1e-5)
    assert (stats.weight_mean, stats.weight_max, stats.corrected_fraction) == pytest.approx((1.3125, 2.0, 0.5))
    assert (stats.clip_fraction, stats.dual_clip_fraction) == (0.0, 0.0)


def test_none_is_the_ppo_clip_against_the_behaviour_policy():
    # Token 1 (ratio 3, A = +1) is clipped at 1.2 with no gradient; weights stay 1.
    logp = torch.zeros(1, 2, requires_grad=True)
    loss, stats = policy_loss(logp, BEHAVIOUR[:, :2], torch.tensor([1.0]), MASK[:, :2], **CLIP, correction=_kind("none"))
    torch.testing.assert_close(loss, torch.tensor([[-1.0, -1.2]]))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-1.0, 0.0]]))
    assert (stats.weight_mean, stats.weight_max, stats.corrected_fraction, stats.clip_fraction) == (1.0, 1.0, 0.0, 0.5)


@pytest.mark.parametrize("kind", ["tis", "mask", "decoupled"])
def test_extreme_ratios_stay_finite_and_bounded(kind):
    # pi_prox / pi_b of 1e9 and 1e-9: log-ratios +-20.72 are clamped to +-20, so the ratios are
    # e^20 = 4.85e8 and e^-20 = 2.06e-9. tis: weights 2 (cap) and 2.06e-9; mask: both 0;
    # decoupled: 0 (above 5) and 2.06e-9. Padding with a -inf behaviour logprob weighs 0.
    behaviour = torch.tensor([[-math.log(1e9), math.log(1e9), -math.inf]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    logp = torch.zeros(1, 3, requires_grad=True)
    loss, stats = policy_loss(logp, behaviour, torch.tensor([-1.0]), mask, **CLIP, correction=_kind(kind))
    small = math.exp(-20.0)
    expected = {"tis": [2.0, small, 0.0], "mask": [0.0, 0.0, 0.0], "decoupled": [0.0, small, 0.0]}[kind]
    torch.testing.assert_close(loss, torch.tensor([expected]))  # A = -1: loss = +w
    loss.sum().backward()
    assert torch.isfinite(logp.grad).all()
    assert stats.ratio_max == pytest.approx(math.exp(20.0), rel=1e-5)


@pytest.mark.parametrize("kind", ["none", "tis", "mask", "decoupled"])
def test_an_all_masked_batch_gives_zero_loss_gradient_and_stats(kind):
    logp = torch.zeros(2, 3, requires_grad=True)
    loss, stats = policy_loss(logp, torch.zeros(2, 3), torch.tensor([1.0, -1.0]), torch.zeros(2, 3), **CLIP, correction=_kind(kind))
    assert torch.equal(loss, torch.zeros(2, 3))
    loss.sum().backward()
    assert torch.equal(logp.grad, torch.zeros(2, 3))
    assert stats.ratio_max == stats.weight_max == stats.corrected_fraction == 0.0


def test_config_names_an_unknown_kind_and_bad_bounds():
    with pytest.raises(ValueError, match="learner.correction.kind"):
        CorrectionConfig(kind="ppo")
    with pytest.raises(ValueError, match="mask_low"):
        CorrectionConfig(mask_low=1.5)
    with pytest.raises(ValueError, match="tis_cap"):
        CorrectionConfig(tis_cap=0.5)
