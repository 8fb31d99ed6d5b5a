"""GRPO loss math: group-normalised advantages, PPO-clipped surrogate, k3 KL, token mean.

Pure torch (and the config dataclass of the corrections), so the learner and the CPU tests share
exactly one copy. Off-policy corrections: learner/corrections.py.

References:
- GRPO: Shao et al., "DeepSeekMath" (arXiv 2402.03300), section 4.1: outcome rewards are
  normalised within the group of samples drawn for one prompt; the KL to a frozen reference is
  a loss term (not folded into the reward), estimated per token with the unbiased,
  non-negative estimator of Schulman, "Approximating KL Divergence" (2020), known as k3.
- PPO clipped surrogate: Schulman et al. (arXiv 1707.06347), eq. 7; asymmetric clip range
  ("clip-higher") as in DAPO (arXiv 2503.14476); dual clip for negative advantages as in
  Ye et al., "Mastering Complex Control in MOBA Games" (arXiv 1912.09729), section 3.3.
- Dr. GRPO: Liu et al. (arXiv 2503.20783): mean-centring without dividing by the group std,
  to avoid up-weighting groups whose rewards barely differ.
- Token-mean aggregation as in RACRO's public training scripts (arXiv 2506.04559).

Shape legend: N groups, G samples per group, B sequences, T response tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from configs.schema import CorrectionConfig
from learner.corrections import MAX_LOG_RATIO, correction_weights

# Bound of one token's k3 KL estimate: a token the reference finds e^20 times likelier would
# otherwise contribute ~e^20 and swamp the policy gradient of the whole batch.
MAX_TOKEN_KL = 10.0


@dataclass(frozen=True)
class PolicyLossStats:
    """Detached diagnostics of one policy-loss evaluation (over masked tokens only).

    All are 0.0 when the mask selects no token.
    """

    clip_fraction: float  # share of tokens whose gradient the clip removed
    dual_clip_fraction: float  # share of tokens held by the dual clip (negative A, ratio > c)
    ratio_mean: float  # mean of pi / pi_behaviour
    ratio_max: float  # largest pi / pi_behaviour: a spike means stale or mismatched samples
    # The correction's per-token weights (1 under kind none) and the share of tokens it
    # truncated or masked out.
    weight_mean: float
    weight_max: float
    corrected_fraction: float


@dataclass(frozen=True)
class GRPOLossStats:
    """Scalars of one `grpo_loss` call, for logging.

    With `total_tokens` set (micro-batching), `loss`, `pg_loss` and `kl` are this micro-batch's
    share of the full-batch token mean: summing them over micro-batches gives the batch value.
    `policy` always describes this call's own tokens.
    """

    loss: float
    pg_loss: float
    kl: float  # token-mean k3 KL to the reference; 0.0 when no reference was given
    policy: PolicyLossStats


_NO_TOKENS = PolicyLossStats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _require_same_shape(**tensors: torch.Tensor) -> None:
    """Raise ValueError naming every tensor if their shapes differ."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name}{shape}" for name, shape in shapes.items())
        raise ValueError(f"shape mismatch: {listed}")


def _require_2d(name: str, t: torch.Tensor) -> None:
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D [B, T], got shape {tuple(t.shape)}")


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6, scale_by_std: bool = True) -> torch.Tensor:
    """GRPO advantages: each sample's reward relative to its own group.

    A = (r - mean_g(r)) / (std_g(r) + eps), or only r - mean_g(r) when `scale_by_std` is False
    (Dr. GRPO). The std is the population std (unbiased=False): the group *is* the whole set
    being normalised, not a sample from a larger one, and with G = 2 the unbiased estimate
    would shrink every advantage by 1/sqrt(2) for no reason. A group whose rewards are all equal
    carries no signal and gets exactly zero advantages (no 0/0, no rounding residue).

    Args:
        rewards: `[N, G]`, N groups of G samples of the same prompt.
    Returns:
        `[N, G]` advantages, same dtype as `rewards`.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be 2-D [N groups, G samples], got shape {tuple(rewards.shape)}")
    rewards = rewards.float() if not rewards.is_floating_point() else rewards
    mean = rewards.mean(dim=1, keepdim=True)  # [N, 1]
    centred = rewards - mean  # [N, G]
    if scale_by_std:
        std = rewards.std(dim=1, keepdim=True, unbiased=False)  # [N, 1]
        centred = centred / (std + eps)
    # Equal rewards can leave a ~1e-17 residue after (r - mean) in floating point; zero it.
    flat = rewards.amax(dim=1, keepdim=True) == rewards.amin(dim=1, keepdim=True)  # [N, 1]
    return torch.where(flat, torch.zeros_like(centred), centred)


def clipped_policy_loss(
    logp: torch.Tensor,
    behaviour_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float,
    clip_high: float,
    dual_clip: float,
) -> tuple[torch.Tensor, PolicyLossStats]:
    """Per-token PPO clipped surrogate, -min(ratio * A, clip(ratio, 1-clip_low, 1+clip_high) * A),
    and for A < 0 at most -A * dual_clip.

    ratio = exp(logp - behaviour_logp) is the importance ratio against the logprobs the actor
    actually sampled with. In asynchronous training those come from an older policy version,
    so this ratio is the off-policy correction for stale samples, and the clip bounds how far a
    stale sample can push the current policy. The PPO clip alone leaves -ratio * A unbounded
    when A < 0 and the ratio is large (a token the stale policy found unlikely and the current
    one likes): one such token can outweigh a whole batch. The dual clip caps that loss at
    -A * dual_clip (no gradient beyond); 0 turns it off, otherwise it must exceed 1 + clip_high.

    Args:
        logp: `[B, T]` current policy logprobs of the sampled tokens (carries the gradient).
        behaviour_logp: `[B, T]` logprobs recorded at generation time (treated as data).
        advantages: `[B]`, one per sequence, broadcast over its tokens.
        mask: `[B, T]`, 1/True on response tokens that count.
    Returns:
        per-token loss `[B, T]` (zero where masked out, not yet aggregated) and detached stats.
    """
    _require_2d("logp", logp)
    _require_same_shape(logp=logp, behaviour_logp=behaviour_logp, mask=mask)
    if tuple(advantages.shape) != (logp.shape[0],):
        raise ValueError(
            f"shape mismatch: advantages{tuple(advantages.shape)} must be [B] = ({logp.shape[0]},) "
            f"for logp{tuple(logp.shape)}"
        )
    if clip_low < 0 or clip_high < 0:
        raise ValueError(f"clip ranges must be >= 0, got clip_low={clip_low}, clip_high={clip_high}")
    if dual_clip != 0 and dual_clip <= 1.0 + clip_high:
        raise ValueError(f"dual_clip must be 0 (off) or > 1 + clip_high = {1 + clip_high}, got {dual_clip}")

    keep = mask.bool()  # [B, T]
    # Mask the log-ratio *before* exp: padding may hold arbitrary logprobs (even -inf), and a
    # nan/inf there would leak into the sum and the gradient despite being multiplied by 0.
    log_ratio = torch.where(keep, logp - behaviour_logp.detach(), torch.zeros_like(logp))  # [B, T]
    ratio = torch.exp(log_ratio.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO))  # [B, T]
    adv = advantages.detach().to(logp.dtype).unsqueeze(1)  # [B, 1]
    unclipped = ratio * adv  # [B, T]
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * adv  # [B, T]
    per_token = -torch.minimum(unclipped, clipped)  # [B, T]
    held = torch.zeros_like(keep)
    if dual_clip:
        bound = -dual_clip * adv  # [B, 1], only binding where A < 0
        held = (adv < 0) & (per_token > bound) & keep  # [B, T]
        per_token = torch.where(held, bound.expand_as(per_token), per_token)
    per_token = torch.where(keep, per_token, torch.zeros_like(per_token))

    with torch.no_grad():
        n = keep.sum()
        if n == 0:
            return per_token, _NO_TOKENS
        # The clip is active exactly where the clipped term is the smaller one: there the
        # objective is constant in ratio and the token contributes no gradient.
        clip_fraction = ((clipped < unclipped) & keep).sum().float() / n
        stats = PolicyLossStats(
            clip_fraction=float(clip_fraction),
            dual_clip_fraction=float(held.sum().float() / n),
            ratio_mean=float(ratio[keep].float().mean()),
            ratio_max=float(ratio[keep].max()),
            weight_mean=1.0,
            weight_max=1.0,
            corrected_fraction=0.0,
        )
    return per_token, stats


def policy_loss(
    logp: torch.Tensor,
    behaviour_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float,
    clip_high: float,
    correction: CorrectionConfig,
) -> tuple[torch.Tensor, PolicyLossStats]:
    """Per-token policy-gradient loss `[B, T]` under `correction` (learner/corrections.py).

    `none` is `clipped_policy_loss` against the behaviour logprobs. The other kinds clip against
    the proximal policy (the weights before the step: `logp`'s own values) and weight each token;
    their `ratio_mean`/`ratio_max` still describe pi / pi_behaviour, the staleness signal.

    What bounds one token's loss (A its advantage; derived in learner/corrections.py): under
    `none`, (1 + clip_high)|A| for A > 0 and dual_clip |A| for A < 0 (unbounded without the dual
    clip); under the other kinds the clip and the dual clip never bind (pi / pi_prox is 1), and
    the weight bounds it: tis_cap |A| (`tis`), |A| (`mask`), decoupled_cap |A| (`decoupled`).
    """
    per_token, stats, _ = _policy_loss_and_kept(logp, behaviour_logp, advantages, mask, clip_low, clip_high, correction)
    return per_token, stats


def _policy_loss_and_kept(
    logp: torch.Tensor,
    behaviour_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float,
    clip_high: float,
    correction: CorrectionConfig,
) -> tuple[torch.Tensor, PolicyLossStats, torch.Tensor]:
    """`policy_loss`, and the tokens the correction kept (`mask` less those it dropped: weight 0)."""
    if correction.kind == "none":
        per_token, stats = clipped_policy_loss(
            logp, behaviour_logp, advantages, mask, clip_low, clip_high, correction.dual_clip
        )
        return per_token, stats, mask.bool()
    per_token, stats = clipped_policy_loss(
        logp, logp.detach(), advantages, mask, clip_low, clip_high, correction.dual_clip
    )  # [B, T]
    weighted = correction_weights(logp, behaviour_logp, mask, correction)
    per_token = per_token * weighted.weights
    keep = mask.bool()
    kept = keep & ~weighted.dropped
    if not keep.any():
        return per_token, _NO_TOKENS, kept
    with torch.no_grad():
        ratio = weighted.ratio[keep].float()  # pi_prox / pi_b: the values of pi / pi_b
        weights = weighted.weights[keep].float()
        stats = replace(
            stats,
            ratio_mean=float(ratio.mean()),
            ratio_max=float(ratio.max()),
            weight_mean=float(weights.mean()),
            weight_max=float(weights.max()),
            corrected_fraction=float(weighted.corrected.sum()) / float(keep.sum()),
        )
    return per_token, stats, kept


def low_variance_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(pi || pi_ref) on tokens sampled from pi.

    With d = ref_logp - logp: k3 = exp(d) - d - 1, unbiased (E_pi[exp(d)] = 1) and >= 0 since
    e^d >= 1 + d. Written as expm1(d) - d, which keeps tiny d from rounding below zero.
    Each token's estimate is capped at MAX_TOKEN_KL (reached at d = 2.61 or d = -11), so a
    single token the reference finds far likelier cannot dominate the batch; beyond the cap
    that token gives no KL gradient.

    Args:
        logp, ref_logp: `[B, T]` (any equal shapes work).
    Returns:
        `[B, T]` non-negative per-token KL estimates (unmasked).
    """
    _require_same_shape(logp=logp, ref_logp=ref_logp)
    d = (ref_logp.detach() - logp).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)  # [B, T]
    return (torch.expm1(d) - d).clamp(0.0, MAX_TOKEN_KL)


def token_mean(values: torch.Tensor, mask: torch.Tensor, total_tokens: float | None = None) -> torch.Tensor:
    """sum(values * mask) / total, every response token weighted equally across sequences.

    `total` defaults to mask.sum(). Passing the token count of the *whole* batch lets the
    learner split the batch into micro-batches, call this on each and accumulate gradients:
    the sum of the micro-batch results is then exactly the full-batch token mean (a mean of
    per-micro-batch means would over-weight micro-batches with fewer tokens).
    An empty mask with no explicit total gives 0.

    Args:
        values, mask: `[B, T]`.
        total_tokens: denominator override, must be > 0.
    Returns:
        0-dim tensor.
    """
    _require_same_shape(values=values, mask=mask)
    keep = mask.bool()
    masked_sum = torch.where(keep, values, torch.zeros_like(values)).sum()
    if total_tokens is None:
        return masked_sum / keep.sum().clamp_min(1).to(values.dtype)
    if total_tokens <= 0:
        raise ValueError(f"total_tokens must be > 0, got {total_tokens}")
    return masked_sum / total_tokens


def grpo_loss(
    logp: torch.Tensor,
    behaviour_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float,
    clip_high: float,
    correction: CorrectionConfig,
    kl_coef: float,
    total_tokens: float | None = None,
) -> tuple[torch.Tensor, GRPOLossStats]:
    """GRPO objective: token_mean(policy loss under `correction`) + kl_coef * token_mean(k3 KL
    to reference, over the tokens the correction kept), both means over every response token.

    Without a reference (`ref_logp` None, what the learner passes when kl_coef is 0) there is no
    KL term and `kl` reads 0.

    Args:
        logp, behaviour_logp, mask: `[B, T]`; ref_logp: `[B, T]` or None; advantages: `[B]`.
        total_tokens: full-batch token count when this is one micro-batch (see `token_mean`).
    Returns:
        scalar loss (to backpropagate) and float stats.
    """
    if ref_logp is not None:
        _require_same_shape(logp=logp, ref_logp=ref_logp)
    if kl_coef < 0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
    per_token_pg, pg_stats, kept = _policy_loss_and_kept(
        logp, behaviour_logp, advantages, mask, clip_low, clip_high, correction
    )  # [B, T]
    pg_loss = token_mean(per_token_pg, mask, total_tokens)
    loss = pg_loss
    kl_value = 0.0
    if ref_logp is not None:
        # A token the correction dropped gets no KL gradient either (as verl): k3 estimates the KL
        # from tokens sampled by pi, and the dropped ones are those whose sampler was furthest from
        # it. It still counts in the denominator, as in the policy term (as AReaL's): the token
        # mean stays the step's over every response token, exact across micro-batches.
        per_token_kl = torch.where(kept, low_variance_kl(logp, ref_logp), torch.zeros_like(logp))
        kl = token_mean(per_token_kl, mask, total_tokens)
        loss = loss + kl_coef * kl
        kl_value = float(kl.detach())
    stats = GRPOLossStats(loss=float(loss.detach()), pg_loss=float(pg_loss.detach()), kl=kl_value, policy=pg_stats)
    return loss, stats
