"""The row a learner step writes to metrics.jsonl, built from typed pieces.

Key namespaces: `reward/`, `staleness/`, `rollout/`, `reasoner/`, `loss/`, `correction/`, `logprob/`, `replay/`,
`gate/`, `time/`, `throughput/` (the README lists every key).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from learner.staleness import staleness
from learner.update import UpdateStats
from wire.scored_group import COUNTER_NAMES, ActorCounters, ScoredGroup


@dataclass
class RunCounts:
    """Running totals of the whole run so far, as rank 0 sees them."""

    dropped_stale: int = 0  # groups older than max_staleness, given back to the gate
    dropped_uniform: int = 0  # groups whose rewards were all equal (when dropped)
    replay_accepted: int = 0
    replay_rejected: int = 0  # malformed frames
    replay_buffered: int = 0  # groups waiting in the replay queue now
    gate_admitted: int = 0
    gate_given_back: int = 0
    gate_refused: int = 0


@dataclass(frozen=True)
class StepTimes:
    wait_s: float  # waiting for the step's groups
    update_s: float
    publish_s: float


def rollout_metrics(groups: list[ScoredGroup], learner_version: int) -> dict:
    """Reward, staleness and versions of the step's samples (`learner_version`: the weights trained)."""
    rewards = np.stack([g.rewards for g in groups])  # [N, G]
    versions = [int(v) for g in groups for v in g.sample_versions]
    age = staleness(learner_version, versions)
    # Samples whose tokens came from more than one policy version (weights swapped mid-caption).
    mixed = sum(int(t.min() != t.max()) for g in groups for t in g.token_versions)
    return {
        "reward/mean": float(rewards.mean()),
        "reward/std": float(rewards.std()),
        "staleness/min": age.min,
        "staleness/mean": age.mean,
        "staleness/max": age.max,
        "rollout/policy_version_max": max(versions),
        "rollout/policy_version_min": min(versions),
        "rollout/mixed_version_fraction": mixed / len(versions),
        "reasoner/latency_s": float(np.mean([g.timings.score_s for g in groups])),
        "rollout/generate_s": float(np.mean([g.timings.generate_s for g in groups])),
    }


def update_metrics(stats: UpdateStats, captions: int) -> dict:
    return {
        "rollout/caption_tokens_mean": stats.tokens / captions,  # tokens summed over ranks
        "loss/total": stats.loss,
        "loss/policy": stats.pg_loss,
        "loss/kl": stats.kl,
        "loss/clip_fraction": stats.clip_fraction,
        "loss/dual_clip_fraction": stats.dual_clip_fraction,
        "loss/ratio_mean": stats.ratio_mean,
        "loss/ratio_max": stats.ratio_max,
        "correction/weight_mean": stats.weight_mean,
        "correction/weight_max": stats.weight_max,
        "correction/corrected_fraction": stats.corrected_fraction,
        "loss/grad_norm": stats.grad_norm,
        "logprob/on_policy_abs_diff": stats.on_policy_logprob_diff,
    }


def count_metrics(counts: RunCounts, actors: dict[int, ActorCounters], times: StepTimes) -> dict:
    """Running totals (the run's, and the actors' as their latest groups told them), and timings."""
    row = {
        "replay/dropped_stale": counts.dropped_stale,
        "replay/dropped_uniform": counts.dropped_uniform,
        "replay/accepted": counts.replay_accepted,
        "replay/rejected": counts.replay_rejected,
        "replay/buffered": counts.replay_buffered,
        "gate/admitted": counts.gate_admitted,
        "gate/given_back": counts.gate_given_back,
        "gate/refused": counts.gate_refused,
    }
    row.update({f"rollout/{name}": sum(getattr(c, name) for c in actors.values()) for name in COUNTER_NAMES})
    row.update({f"time/{f.name}": getattr(times, f.name) for f in fields(times)})
    return row
