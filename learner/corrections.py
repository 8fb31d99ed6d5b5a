"""Off-policy corrections: how much a token sampled by an older policy counts in the update.

Three policies meet in one update:
- pi_b, the behaviour policy: the weights that sampled the token (the actor recorded its logprob);
- pi_prox, the proximal policy: the learner's weights before this step. The learner takes one
  optimizer step per learner step, so pi_prox's logprobs are the values of the very logprobs it
  differentiates: recomputing them costs no extra forward pass;
- pi_theta: the same weights, carrying the gradient.

`none` runs PPO's clip on pi_theta / pi_b. The other kinds run it on pi_theta / pi_prox (whose
value is 1 in a single-step update, so there the clip never binds and the gradient is the plain
policy gradient) and multiply each token's term by a weight computed from pi_prox / pi_b, as data:
- `tis` (truncated importance sampling, as verl / OpenRLHF): min(pi_prox / pi_b, tis_cap);
- `mask` (token masking, as "icepop"): 1 inside [mask_low, mask_high], 0 outside;
- `decoupled` (AReaL's decoupled PPO): pi_prox / pi_b, and 0 above decoupled_cap (AReaL drops
  such tokens rather than truncating them).

What bounds one token's loss, with A its advantage and r = pi_theta / pi_b (its value):
- `none`: for A > 0 the loss is -A min(r, clip(r)) >= -(1 + clip_high) A; for A < 0 it is
  |A| max(r, clip(r)), which grows with r, and the dual clip caps it at dual_clip |A| (without
  it only the e^20 clamp of the log-ratio does).
- `tis`, `mask`, `decoupled`: pi_theta / pi_prox is 1, inside the clip range, so neither the clip
  nor the dual clip ever binds (their fractions would always read 0 and are not reported); the
  loss is -A w with w the weight: |loss| <= tis_cap |A|, <= |A| and <= decoupled_cap |A|.
And |A| itself: at most sqrt(G - 1) when advantages are divided by the group's std (one sample
apart from G - 1 equal ones), at most the reward range without (Dr. GRPO).
A token a kind drops (weight 0) also gets no KL gradient (learner/grpo.py, `grpo_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from configs.schema import CorrectionConfig

# Log-ratios are clamped here before exp(), as in the PPO ratio: e^20 already means the two
# policies disagree completely, and no weight may become inf.
MAX_LOG_RATIO = 20.0


@dataclass(frozen=True)
class CorrectionWeights:
    """Per-token weights `[B, T]` (no gradient; 0 off the mask), which tokens were truncated or
    masked out (`corrected`, bool `[B, T]`), and the ratio pi_prox / pi_b they came from (1 off
    the mask)."""

    weights: torch.Tensor
    corrected: torch.Tensor
    ratio: torch.Tensor

    @property
    def dropped(self) -> torch.Tensor:
        """Tokens corrected to weight 0 (`mask` outside its band, `decoupled` above its cap); a
        token `tis` truncates keeps weight tis_cap."""
        return self.corrected & (self.weights == 0)


def correction_weights(
    proximal_logp: torch.Tensor, behaviour_logp: torch.Tensor, mask: torch.Tensor, correction: CorrectionConfig
) -> CorrectionWeights:
    """The weight each token's policy-gradient term gets under `correction.kind` (not `none`).

    Args:
        proximal_logp, behaviour_logp, mask: `[B, T]`.
    """
    if correction.kind == "none":
        raise ValueError("correction kind 'none' weighs nothing: it clips pi / pi_b instead")
    keep = mask.bool()
    log_ratio = torch.where(keep, proximal_logp.detach() - behaviour_logp, torch.zeros_like(proximal_logp))
    ratio = torch.exp(log_ratio.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO))  # pi_prox / pi_b, [B, T]
    if correction.kind == "tis":
        corrected = ratio > correction.tis_cap
        weights = ratio.clamp(max=correction.tis_cap)
    elif correction.kind == "mask":
        corrected = (ratio < correction.mask_low) | (ratio > correction.mask_high)
        weights = (~corrected).to(ratio.dtype)
    elif correction.kind == "decoupled":
        corrected = ratio > correction.decoupled_cap
        weights = torch.where(corrected, torch.zeros_like(ratio), ratio)
    else:
        raise ValueError(f"unknown correction kind {correction.kind!r}")
    zero = torch.zeros_like(weights)
    return CorrectionWeights(weights=torch.where(keep, weights, zero), corrected=corrected & keep, ratio=ratio)
