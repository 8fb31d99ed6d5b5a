"""One GRPO update over a step's caption groups, under DeepSpeed."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.distributed as dist

from configs.schema import LearnerConfig
from learner.batching import PolicyBatch
from learner.grpo import GRPOLossStats, grpo_loss
from learner.logprobs import sequence_logprobs
from vlm.sampling import SamplingSpec


@dataclass(frozen=True)
class UpdateStats:
    loss: float
    pg_loss: float
    kl: float
    clip_fraction: float
    dual_clip_fraction: float
    ratio_mean: float
    ratio_max: float
    weight_mean: float  # the correction's per-token weights (1 under kind none)
    weight_max: float
    corrected_fraction: float  # tokens the correction truncated or masked out
    grad_norm: float
    tokens: int
    # Mean |learner logprob - behaviour logprob| over the tokens sampled by the very weights being
    # trained (staleness 0), also where a caption's earlier tokens came from older weights:
    # nonzero only through numerics; watch it for drift.
    on_policy_logprob_diff: float


def global_token_count(batches: list[PolicyBatch]) -> float:
    """Tokens in the whole step across ranks, so every micro-batch divides by the same total."""
    count = torch.tensor([sum(float(b.completion_mask.sum()) for b in batches)])
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(count)
    return float(count)


@dataclass
class _StepSums:
    """What one rank's micro-batches add up; the step's statistics are its sums over ranks."""

    loss: float = 0.0
    pg_loss: float = 0.0
    kl: float = 0.0
    clipped_tokens: float = 0.0
    dual_clipped_tokens: float = 0.0
    ratio_sum: float = 0.0
    weight_sum: float = 0.0
    corrected_tokens: float = 0.0
    tokens: float = 0.0
    on_policy_diff: float = 0.0  # sum of |learner - behaviour| logprob over on-policy tokens
    on_policy_tokens: float = 0.0
    # Maxima, not sums.
    ratio_max: float = 0.0
    weight_max: float = 0.0

    def add(self, stats: GRPOLossStats, tokens: float, diff: float, on_policy_tokens: float) -> None:
        self.loss += stats.loss
        self.pg_loss += stats.pg_loss
        self.kl += stats.kl
        policy = stats.policy
        self.clipped_tokens += policy.clip_fraction * tokens
        self.dual_clipped_tokens += policy.dual_clip_fraction * tokens
        self.ratio_sum += policy.ratio_mean * tokens
        self.weight_sum += policy.weight_mean * tokens
        self.corrected_tokens += policy.corrected_fraction * tokens
        self.tokens += tokens
        self.on_policy_diff += diff
        self.on_policy_tokens += on_policy_tokens
        self.ratio_max = max(self.ratio_max, policy.ratio_max)
        self.weight_max = max(self.weight_max, policy.weight_max)

    def over_ranks(self) -> _StepSums:
        if not dist.is_initialized() or dist.get_world_size() == 1:
            return self
        maxima = ["ratio_max", "weight_max"]
        sums = [f.name for f in fields(self) if f.name not in maxima]
        reduced = {}
        for op, names in ((dist.ReduceOp.SUM, sums), (dist.ReduceOp.MAX, maxima)):
            values = torch.tensor([getattr(self, name) for name in names], dtype=torch.float64)
            dist.all_reduce(values, op=op)
            reduced.update(zip(names, values.tolist()))
        return _StepSums(**reduced)


def grpo_update(
    engine, ref_model, batches: list[PolicyBatch], version: int, config: LearnerConfig, sampling: SamplingSpec
) -> UpdateStats:
    """Each batch is one micro-batch (one caption group or several); DeepSpeed steps the optimizer after the last.
    `version` is the policy version of the weights being trained; `sampling` the distribution the
    actors sampled from, under which the logprobs are computed. `ref_model` (None without a KL
    term) is the frozen initial policy."""
    total_tokens = global_token_count(batches)
    world = dist.get_world_size() if dist.is_initialized() else 1
    # DeepSpeed divides each micro-batch loss by the accumulation steps and averages gradients
    # over ranks; undo both so the result is the exact token mean over the whole step.
    loss_scale = engine.gradient_accumulation_steps() * world
    sums = _StepSums()
    for batch in batches:
        logp = sequence_logprobs(engine, batch, sampling)  # [S, T]
        ref_logp = None
        if ref_model is not None:
            with torch.no_grad():
                ref_logp = sequence_logprobs(ref_model, batch, sampling)
        loss, stats = grpo_loss(
            logp,
            batch.behaviour_logprobs,
            ref_logp,
            batch.advantages,
            batch.completion_mask,
            clip_low=config.clip_low,
            clip_high=config.clip_high,
            correction=config.correction,
            kl_coef=config.kl_coef,
            total_tokens=total_tokens,
        )
        engine.backward(loss * loss_scale)
        engine.step()
        on_policy = (batch.token_versions == version).float() * batch.completion_mask  # [S, T]
        diff = float(((logp.detach() - batch.behaviour_logprobs).abs() * on_policy).sum())
        sums.add(stats, float(batch.completion_mask.sum()), diff, float(on_policy.sum()))
    sums = sums.over_ranks()
    grad_norm = engine.get_global_grad_norm()
    return UpdateStats(
        loss=sums.loss,
        pg_loss=sums.pg_loss,
        kl=sums.kl,
        clip_fraction=sums.clipped_tokens / sums.tokens,
        dual_clip_fraction=sums.dual_clipped_tokens / sums.tokens,
        ratio_mean=sums.ratio_sum / sums.tokens,
        ratio_max=sums.ratio_max,
        weight_mean=sums.weight_sum / sums.tokens,
        weight_max=sums.weight_max,
        corrected_fraction=sums.corrected_tokens / sums.tokens,
        grad_norm=float(grad_norm) if grad_norm is not None else float("nan"),
        tokens=int(sums.tokens),
        on_policy_logprob_diff=sums.on_policy_diff / sums.on_policy_tokens if sums.on_policy_tokens else float("nan"),
    )
