"""One GRPO update over a step's caption groups, under DeepSpeed."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from configs.schema import LearnerConfig
from learner.batching import PolicyBatch
from learner.grpo import grpo_loss
from learner.logprobs import sequence_logprobs
from vlm.sampling import SamplingSpec


@dataclass(frozen=True)
class UpdateStats:
    loss: float
    pg_loss: float
    kl: float
    clip_fraction: float
    ratio_mean: float
    ratio_max: float
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


def grpo_update(
    engine, ref_model, batches: list[PolicyBatch], version: int, config: LearnerConfig, sampling: SamplingSpec
) -> UpdateStats:
    """Each batch is one micro-batch (one group); DeepSpeed steps the optimizer after the last.
    `version` is the policy version of the weights being trained; `sampling` the distribution the
    actors sampled from, under which the logprobs are computed."""
    total_tokens = global_token_count(batches)
    world = dist.get_world_size() if dist.is_initialized() else 1
    # DeepSpeed divides each micro-batch loss by the accumulation steps and averages gradients
    # over ranks; undo both so the result is the exact token mean over the whole step.
    loss_scale = engine.gradient_accumulation_steps() * world
    sums = dict(loss=0.0, pg_loss=0.0, kl=0.0, clip=0.0, ratio=0.0, diff=0.0, diff_tokens=0.0)
    ratio_max = 0.0
    for batch in batches:
        logp = sequence_logprobs(engine, batch, sampling)  # [G, T]
        ref_logp = None
        if ref_model is not None and config.kl_coef > 0:
            with torch.no_grad():
                ref_logp = sequence_logprobs(ref_model, batch, sampling)
        loss, stats = grpo_loss(
            logp, batch.behaviour_logprobs, ref_logp, batch.advantages, batch.completion_mask,
            clip_low=config.clip_low, clip_high=config.clip_high, kl_coef=config.kl_coef, total_tokens=total_tokens,
        )
        engine.backward(loss * loss_scale)
        engine.step()
        tokens = float(batch.completion_mask.sum())
        sums["loss"] += stats.loss
        sums["pg_loss"] += stats.pg_loss
        sums["kl"] += stats.kl
        sums["clip"] += stats.clip_fraction * tokens
        sums["ratio"] += stats.ratio_mean * tokens
        ratio_max = max(ratio_max, stats.ratio_max)
        on_policy = (batch.token_versions == version).float() * batch.completion_mask
        sums["diff"] += float(((logp.detach() - batch.behaviour_logprobs).abs() * on_policy).sum())
        sums["diff_tokens"] += float(on_policy.sum())
    sums["tokens"] = sum(float(b.completion_mask.sum()) for b in batches)
    sums = _sum_over_ranks(sums)
    grad_norm = engine.get_global_grad_norm()
    return UpdateStats(
        loss=sums["loss"],
        pg_loss=sums["pg_loss"],
        kl=sums["kl"],
        clip_fraction=sums["clip"] / sums["tokens"],
        ratio_mean=sums["ratio"] / sums["tokens"],
        ratio_max=ratio_max,
        grad_norm=float(grad_norm) if grad_norm is not None else float("nan"),
        tokens=int(sums["tokens"]),
        on_policy_logprob_diff=sums["diff"] / sums["diff_tokens"] if sums["diff_tokens"] else float("nan"),
    )


def _sum_over_ranks(sums: dict[str, float]) -> dict[str, float]:
    """Each rank saw its slice of the step; the step's statistics are the sums over ranks."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return sums
    values = torch.tensor(list(sums.values()), dtype=torch.float64)
    dist.all_reduce(values)
    return dict(zip(sums, values.tolist()))
