"""GRPO math on hand-worked numbers (learner/grpo.py)."""

import math

import pytest
import torch

from configs.schema import CorrectionConfig
from learner.grpo import (
    MAX_TOKEN_KL,
    clipped_policy_loss,
    group_advantages,
    grpo_loss,
    low_variance_kl,
    token_mean,
)

# ---------------------------------------------------------------- group_advantages

# The PPO clip range of the hand-worked cases below (symmetric 0.2, as PPO's paper), dual clip
# off except where a test sets it.
CLIP = dict(clip_low=0.2, clip_high=0.2, dual_clip=0.0)
# The same through grpo_loss: PPO against the behaviour policy, dual clip 3.
PPO = dict(clip_low=0.2, clip_high=0.2, correction=CorrectionConfig(kind="none", dual_clip=3.0))


def test_group_advantages_population_std():
    # rewards [1,0,0,1]: mean 0.5; deviations +-0.5; population std sqrt(mean(0.25)) = 0.5.
    # A = +-0.5 / (0.5 + eps).
    eps = 1e-6
    adv = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), eps=eps)
    scale = 0.5 / (0.5 + eps)
    torch.testing.assert_close(adv, torch.tensor([[scale, -scale, -scale, scale]]))


def test_group_advantages_uses_population_not_sample_std():
    # [2,0]: mean 1, population std 1 -> [1,-1]. The unbiased std would be sqrt(2) -> +-0.707.
    adv = group_advantages(torch.tensor([[2.0, 0.0]]), eps=0.0)
    torch.testing.assert_close(adv, torch.tensor([[1.0, -1.0]]))


def test_group_advantages_equal_rewards_are_exactly_zero():
    # Second group: 0.1 three times. (0.1+0.1+0.1)/3 = 0.10000000000000002 in float64, so a
    # naive r - mean leaves a residue; such groups carry no signal and must be exactly 0.
    rewards = torch.tensor([[1.0, 0.0, 1.0], [0.1, 0.1, 0.1], [0.0, 0.0, 0.0]], dtype=torch.float64)
    adv = group_advantages(rewards)
    assert torch.equal(adv[1:], torch.zeros(2, 3, dtype=torch.float64))
    assert not torch.isnan(adv).any()


def test_group_advantages_mean_centred_only():
    # Dr.GRPO: [1,0,0,0] -> mean 0.25 -> [0.75, -0.25, -0.25, -0.25], no std division.
    adv = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), scale_by_std=False)
    torch.testing.assert_close(adv, torch.tensor([[0.75, -0.25, -0.25, -0.25]]))


def test_group_advantages_rejects_1d():
    with pytest.raises(ValueError, match=r"\(4,\)"):
        group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]))


# ---------------------------------------------------------------- clipped_policy_loss


def test_clipped_loss_positive_advantage():
    # behaviour logp 0, current logp [0.5, -0.5, 0]: ratios e^0.5 = 1.648721, e^-0.5 = 0.606531,
    # 1. A = +1, clip 0.2:
    #   token 0: ratio 1.6487 > 1.2 -> min(1.6487, 1.2) = 1.2, loss -1.2, clipped, grad 0;
    #   token 1: ratio 0.6065 < 0.8 but A > 0 -> min(0.6065, 0.8) = 0.6065 (not clipped),
    #            loss -0.606531, d loss / d logp = -ratio = -0.606531;
    #   token 2: ratio 1 -> loss -1, grad -1.
    logp = torch.tensor([[0.5, -0.5, 0.0]], requires_grad=True)
    behaviour = torch.zeros(1, 3)
    mask = torch.ones(1, 3)
    loss, stats = clipped_policy_loss(logp, behaviour, torch.tensor([1.0]), mask, **CLIP)
    torch.testing.assert_close(loss, torch.tensor([[-1.2, -0.606531, -1.0]]))
    loss.sum().backward()
    assert logp.grad[0, 0].item() == 0.0
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -0.606531, -1.0]]))
    # 1 of 3 tokens clipped; mean ratio (1.648721 + 0.606531 + 1) / 3 = 1.085084.
    assert stats.clip_fraction == pytest.approx(1 / 3)
    assert stats.ratio_mean == pytest.approx(1.085084, abs=1e-5)
    assert stats.ratio_max == pytest.approx(1.648721, abs=1e-5)


def test_clipped_loss_negative_advantage():
    # A = -1: token 0 ratio 1.6487: min(-1.6487, -1.2) = -1.6487 -> loss 1.648721, not clipped,
    # grad +ratio = 1.648721. Token 1 ratio 0.6065: min(-0.6065, -0.8) = -0.8 -> loss 0.8,
    # clipped, grad 0.
    logp = torch.tensor([[0.5, -0.5]], requires_grad=True)
    adv = torch.tensor([-1.0])
    loss, stats = clipped_policy_loss(logp, torch.zeros(1, 2), adv, torch.ones(1, 2), **CLIP)
    torch.testing.assert_close(loss, torch.tensor([[1.648721, 0.8]]))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[1.648721, 0.0]]))
    assert stats.clip_fraction == pytest.approx(0.5)


def test_dual_clip_bounds_negative_advantages_only():
    # dual clip c = 3, ratios e^2 = 7.389056 (token 0) and e^0.5 = 1.648721 (token 1).
    # A = -1: token 0's PPO loss would be 7.389056; capped at -A * c = 3, no gradient.
    #         token 1's 1.648721 < 3: unchanged, grad +ratio.
    # A = +2 (second sequence, same ratios): PPO clips at 1.2 -> loss -2.4 on both, the dual
    #         clip never binds for A > 0.
    logp = torch.tensor([[2.0, 0.5], [2.0, 0.5]], requires_grad=True)
    adv = torch.tensor([-1.0, 2.0])
    loss, stats = clipped_policy_loss(
        logp, torch.zeros(2, 2), adv, torch.ones(2, 2), clip_low=0.2, clip_high=0.2, dual_clip=3.0
    )
    torch.testing.assert_close(loss, torch.tensor([[3.0, 1.648721], [-2.4, -2.4]]))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, 1.648721], [0.0, 0.0]]))
    assert stats.dual_clip_fraction == pytest.approx(1 / 4)
    # Off: token 0 keeps the unbounded loss.
    off, off_stats = clipped_policy_loss(logp.detach(), torch.zeros(2, 2), adv, torch.ones(2, 2), **CLIP)
    assert off[0, 0].item() == pytest.approx(math.exp(2.0), abs=1e-5)
    assert off_stats.dual_clip_fraction == 0.0


def test_dual_clip_at_extreme_ratios():
    # ratio 1e9 (log 20.72, beyond the +-20 clamp) with A = -0.5: loss is exactly 0.5 * 3 = 1.5
    # with a zero, finite gradient; ratio 1e-9 with A = -0.5: PPO clips at 0.8 -> loss 0.4.
    logp = torch.tensor([[math.log(1e9), math.log(1e-9)]], requires_grad=True)
    loss, stats = clipped_policy_loss(
        logp, torch.zeros(1, 2), torch.tensor([-0.5]), torch.ones(1, 2), clip_low=0.2, clip_high=0.2, dual_clip=3.0
    )
    torch.testing.assert_close(loss, torch.tensor([[1.5, 0.4]]))
    loss.sum().backward()
    assert torch.equal(logp.grad, torch.zeros(1, 2))
    assert (stats.clip_fraction, stats.dual_clip_fraction) == (0.5, 0.5)


def test_dual_clip_must_exceed_the_upper_clip():
    # c <= 1 + clip_high would bind inside the PPO trust region itself.
    with pytest.raises(ValueError, match="dual_clip"):
        clipped_policy_loss(
            torch.zeros(1, 1),
            torch.zeros(1, 1),
            torch.tensor([-1.0]),
            torch.ones(1, 1),
            clip_low=0.2,
            clip_high=0.2,
            dual_clip=1.2,
        )


def test_clip_higher_is_asymmetric():
    # ratio e^0.2 = 1.221403, A = +1: clipped at 1.2 with clip_high 0.2, free with 0.28.
    logp = torch.tensor([[0.2]])
    _, tight = clipped_policy_loss(logp, torch.zeros(1, 1), torch.tensor([1.0]), torch.ones(1, 1), **CLIP)
    loss, loose = clipped_policy_loss(
        logp, torch.zeros(1, 1), torch.tensor([1.0]), torch.ones(1, 1), clip_low=0.2, clip_high=0.28, dual_clip=0.0
    )
    assert tight.clip_fraction == 1.0 and loose.clip_fraction == 0.0
    torch.testing.assert_close(loss, torch.tensor([[-1.221403]]))


def test_masked_padding_cannot_poison_loss_or_grad():
    # Padding holds -inf behaviour logprobs; masked out it must give loss 0 and finite grads.
    logp = torch.tensor([[0.0, 0.0]], requires_grad=True)
    behaviour = torch.tensor([[0.0, -math.inf]])
    mask = torch.tensor([[1.0, 0.0]])
    loss, stats = clipped_policy_loss(logp, behaviour, torch.tensor([1.0]), mask, **CLIP)
    torch.testing.assert_close(loss, torch.tensor([[-1.0, 0.0]]))
    loss.sum().backward()
    assert torch.isfinite(logp.grad).all()
    assert stats.ratio_max == 1.0


def test_clipped_loss_shape_errors_name_shapes():
    with pytest.raises(ValueError, match=r"behaviour_logp\(2, 4\)"):
        clipped_policy_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2), torch.ones(2, 3), **CLIP)
    with pytest.raises(ValueError, match=r"advantages\(3,\)"):
        clipped_policy_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3), torch.ones(2, 3), **CLIP)


def test_empty_mask_gives_zero_stats():
    loss, stats = clipped_policy_loss(
        torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([1.0]), torch.zeros(1, 2), **CLIP
    )
    assert torch.equal(loss, torch.zeros(1, 2))
    assert (stats.clip_fraction, stats.ratio_mean, stats.ratio_max) == (0.0, 0.0, 0.0)


# ---------------------------------------------------------------- low_variance_kl


def test_kl_identical_is_zero():
    logp = torch.tensor([[-0.3, -2.0, -0.01]])
    assert torch.equal(low_variance_kl(logp, logp.clone()), torch.zeros(1, 3))


def test_kl_hand_value():
    # logp 0, ref log 0.5: d = -0.693147; e^d - d - 1 = 0.5 + 0.693147 - 1 = 0.193147.
    kl = low_variance_kl(torch.tensor([[0.0]]), torch.tensor([[math.log(0.5)]]))
    assert kl.item() == pytest.approx(0.193147, abs=1e-6)


def test_kl_non_negative():
    gen = torch.Generator().manual_seed(0)
    logp = -torch.rand(4, 16, generator=gen) * 5
    ref = -torch.rand(4, 16, generator=gen) * 5
    assert (low_variance_kl(logp, ref) >= 0).all()


def test_kl_per_token_estimate_is_capped():
    # d = ref - logp = 5: e^5 - 5 - 1 = 142.41 -> capped at MAX_TOKEN_KL, no gradient;
    # d = 1: e - 2 = 0.718282 is under the cap, grad d/dlogp = -(e^d - 1) = -1.718282.
    logp = torch.zeros(1, 2, requires_grad=True)
    kl = low_variance_kl(logp, torch.tensor([[5.0, 1.0]]))
    torch.testing.assert_close(kl, torch.tensor([[MAX_TOKEN_KL, math.e - 2]]))
    kl.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -(math.e - 1)]]))


def test_kl_shape_error():
    with pytest.raises(ValueError, match=r"ref_logp\(1, 2\)"):
        low_variance_kl(torch.zeros(1, 3), torch.zeros(1, 2))


# ---------------------------------------------------------------- token_mean


def _two_sequences():
    # Lengths 3 and 1; the padded slots hold 99 to prove they are ignored.
    values = torch.tensor([[1.0, 2.0, 3.0, 99.0], [10.0, 99.0, 99.0, 99.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    return values, mask


def test_token_mean_weights_tokens_not_sequences():
    # (1 + 2 + 3 + 10) / 4 tokens = 4.0; the mean of per-sequence means would be (2 + 10)/2 = 6.
    values, mask = _two_sequences()
    assert token_mean(values, mask).item() == pytest.approx(4.0)


def test_token_mean_micro_batches_sum_to_full_batch():
    # With total_tokens = 4: row 0 gives 6/4 = 1.5, row 1 gives 10/4 = 2.5; 1.5 + 2.5 = 4.0.
    values, mask = _two_sequences()
    first = token_mean(values[:1], mask[:1], total_tokens=4)
    second = token_mean(values[1:], mask[1:], total_tokens=4)
    assert first.item() == pytest.approx(1.5) and second.item() == pytest.approx(2.5)
    assert (first + second).item() == pytest.approx(token_mean(values, mask).item())


def test_token_mean_rejects_bad_total():
    values, mask = _two_sequences()
    with pytest.raises(ValueError):
        token_mean(values, mask, total_tokens=0)
    assert token_mean(values, torch.zeros_like(mask)).item() == 0.0


# ---------------------------------------------------------------- grpo_loss


def test_grpo_loss_hand_value():
    # Two tokens, on-policy (ratio 1), A = 1: pg per token -1, token-mean pg = -1.
    # ref = [log 0.5, 0]: k3 = [0.193147, 0] -> token-mean 0.0965735.
    # loss = -1 + 0.1 * 0.0965735 = -0.99034265.
    logp = torch.zeros(1, 2)
    ref = torch.tensor([[math.log(0.5), 0.0]])
    args = (logp, logp.clone(), ref, torch.tensor([1.0]), torch.ones(1, 2))
    loss, stats = grpo_loss(*args, **PPO, kl_coef=0.1)
    assert loss.item() == pytest.approx(-0.99034265, abs=1e-6)
    assert stats.pg_loss == pytest.approx(-1.0)
    assert stats.kl == pytest.approx(0.0965735, abs=1e-6)
    assert stats.loss == pytest.approx(-0.99034265, abs=1e-6)
    policy = stats.policy
    assert (policy.clip_fraction, policy.dual_clip_fraction, policy.ratio_mean, policy.ratio_max) == (
        0.0,
        0.0,
        1.0,
        1.0,
    )


def test_grpo_loss_kl_only_enters_with_reference_and_coef():
    logp = torch.zeros(1, 2)
    ref = torch.tensor([[math.log(0.5), 0.0]])
    base = (logp, logp.clone())
    rest = (torch.tensor([1.0]), torch.ones(1, 2))
    no_ref, no_ref_stats = grpo_loss(*base, None, *rest, **PPO, kl_coef=0.1)
    zero_coef, zero_coef_stats = grpo_loss(*base, ref, *rest, **PPO, kl_coef=0.0)
    assert no_ref.item() == pytest.approx(-1.0) and no_ref_stats.kl == 0.0
    # kl_coef 0: not in the loss, still measured.
    assert zero_coef.item() == pytest.approx(-1.0)
    assert zero_coef_stats.kl == pytest.approx(0.0965735, abs=1e-6)


def test_grpo_loss_micro_batch_gradients_match_full_batch():
    # Accumulating micro-batch losses computed with total_tokens = full count must give the
    # full-batch gradient exactly (up to float rounding).
    gen = torch.Generator().manual_seed(1)
    logp = (-torch.rand(4, 5, generator=gen)).requires_grad_()
    behaviour = logp.detach() + 0.3 * (torch.rand(4, 5, generator=gen) - 0.5)
    ref = logp.detach() - 0.1
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 0, 0]])
    full, _ = grpo_loss(logp, behaviour, ref, adv, mask, **PPO, kl_coef=0.05)
    full.backward()
    full_grad = logp.grad.clone()
    logp.grad = None
    total = float(mask.sum())  # 11 tokens
    pieces = [slice(0, 1), slice(1, 4)]
    parts = [
        grpo_loss(logp[s], behaviour[s], ref[s], adv[s], mask[s], **PPO, kl_coef=0.05, total_tokens=total)[0]
        for s in pieces
    ]
    sum(parts).backward()
    torch.testing.assert_close(logp.grad, full_grad)
    assert sum(p.item() for p in parts) == pytest.approx(full.item(), abs=1e-6)
