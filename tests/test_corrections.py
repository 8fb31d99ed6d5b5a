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
    loss, stats = policy_loss(
        logp, BEHAVIOUR[:, :2], torch.tensor([1.0]), MASK[:, :2], **CLIP, correction=_kind("none")
    )
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
    loss, stats = policy_loss(
        logp, torch.zeros(2, 3), torch.tensor([1.0, -1.0]), torch.zeros(2, 3), **CLIP, correction=_kind(kind)
    )
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


# What bounds one token's loss, per kind (learner/corrections.py): the bound over |A|, derived
# from the settings of `_kind`: none 3 (the dual clip, above 1 + clip_high = 1.2), tis 2 (its
# cap), mask 1 (weights 0 or 1), decoupled 5 (its cap).
LOSS_BOUND = {"none": 3.0, "tis": 2.0, "mask": 1.0, "decoupled": 5.0}


@pytest.mark.parametrize("kind", ["none", "tis", "mask", "decoupled"])
def test_no_tokens_loss_exceeds_its_kinds_bound_and_some_token_reaches_it(kind):
    # Ratios pi / pi_b from e^-8 to e^8, and exactly at each cap, under A = +-1 and +-0.5.
    log_ratios = torch.cat([torch.linspace(-8.0, 8.0, 161), torch.log(torch.tensor([1.2, 2.0, 3.0, 5.0]))])
    logp = torch.zeros(4, log_ratios.numel())
    behaviour = -log_ratios.expand_as(logp)  # pi (and pi_prox) 1, so the ratio is 1 / pi_b
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])
    loss, _ = policy_loss(logp, behaviour, advantages, torch.ones_like(logp), **CLIP, correction=_kind(kind))
    relative = loss.abs() / advantages.abs().unsqueeze(1)
    assert relative.max().item() == pytest.approx(LOSS_BOUND[kind], rel=1e-5)


def test_under_a_correction_neither_clip_binds_whatever_the_staleness():
    # pi / pi_prox is exactly 1: ratios to pi_b of e^-8 .. e^8 and negative advantages leave the
    # clip and dual clip fractions at 0, as they would be for any input (so they are not logged).
    logp = torch.zeros(2, 17)
    behaviour = -torch.linspace(-8.0, 8.0, 17).expand_as(logp)
    for kind in ("tis", "mask", "decoupled"):
        _, stats = policy_loss(
            logp, behaviour, torch.tensor([1.0, -1.0]), torch.ones_like(logp), **CLIP, correction=_kind(kind)
        )
        assert (stats.clip_fraction, stats.dual_clip_fraction) == (0.0, 0.0)


def test_the_advantage_bound_is_sqrt_of_g_minus_one_with_std_scaling():
    from learner.grpo import group_advantages

    for g in (2, 4, 8, 16):
        one_apart = torch.zeros(1, g)
        one_apart[0, 0] = 1.0  # the most extreme group: z = (1 - 1/G) / sqrt((1/G)(1 - 1/G)) = sqrt(G - 1)
        assert group_advantages(one_apart).abs().max().item() == pytest.approx(math.sqrt(g - 1), rel=1e-4)
        spread = torch.rand(64, g)
        assert group_advantages(spread).abs().max().item() <= math.sqrt(g - 1) + 1e-4


@pytest.mark.parametrize(
    "kind, kl_gradient",
    [
        # Ratios pi_prox / pi_b of 1, 3, 0.25 and 10 (BEHAVIOUR). mask keeps only the first token;
        # decoupled drops only the ratio-10 one; tis truncates two but drops none; none drops none.
        ("mask", [True, False, False, False]),
        ("decoupled", [True, True, True, False]),
        ("tis", [True, True, True, True]),
        ("none", [True, True, True, True]),
    ],
)
def test_a_dropped_token_gets_no_kl_gradient_but_still_counts_in_the_mean(kind, kl_gradient):
    from learner.grpo import grpo_loss, low_variance_kl

    # A = 0: no policy gradient at all, so the gradient is the KL term's alone. The reference's
    # logprob is -1 on every token: each token's k3 is e^-1 - (-1) - 1 = e^-1 = 0.3679.
    logp = torch.zeros(1, 4, requires_grad=True)
    reference = torch.full((1, 4), -1.0)
    loss, stats = grpo_loss(
        logp, BEHAVIOUR, reference, torch.tensor([0.0]), MASK, **CLIP, correction=_kind(kind), kl_coef=1.0
    )
    loss.backward()
    assert (logp.grad[0] != 0).tolist() == kl_gradient
    # The token mean divides by all 4 response tokens, kept or not.
    kept = sum(kl_gradient)
    assert stats.kl == pytest.approx(kept * math.exp(-1.0) / 4, rel=1e-5)
    # Each kept token's gradient is d k3 / d logp / 4 = (1 - e^(ref - logp)) / 4 = (1 - e^-1) / 4.
    expected = (1 - math.exp(-1.0)) / 4
    assert logp.grad[0][logp.grad[0] != 0].tolist() == pytest.approx([expected] * kept, rel=1e-5)
    assert low_variance_kl(logp.detach(), reference)[0, 0].item() == pytest.approx(math.exp(-1.0), rel=1e-6)


@pytest.mark.parametrize("kind", ["none", "tis", "mask", "decoupled"])
def test_the_clip_fractions_are_logged_only_where_they_can_bind(kind):
    from learner.step_metrics import update_metrics
    from learner.update import UpdateStats
    from wire import metric_names as names

    stats = UpdateStats(
        loss=0.1,
        pg_loss=0.1,
        kl=0.0,
        clip_fraction=0.25,
        dual_clip_fraction=0.05,
        ratio_mean=1.0,
        ratio_max=2.0,
        weight_mean=1.0,
        weight_max=1.0,
        corrected_fraction=0.0,
        grad_norm=1.0,
        tokens=40,
        on_policy_logprob_diff=0.0,
    )
    row = update_metrics(stats, captions=8, correction_kind=kind)
    clipping = {names.LOSS_CLIP_FRACTION, names.LOSS_DUAL_CLIP_FRACTION}
    assert (clipping <= row.keys()) == (kind == "none")
    assert {names.CORRECTION_WEIGHT_MAX, names.CORRECTION_CORRECTED_FRACTION} <= row.keys()  # every kind
    assert row[names.ROLLOUT_CAPTION_TOKENS_MEAN] == 5.0  # 40 tokens over 8 captions
