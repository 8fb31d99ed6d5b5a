"""The row a learner step writes to metrics.jsonl, built from typed pieces.

Key namespaces: `reward/`, `staleness/`, `rollout/`, `reasoner/`, `loss/`, `correction/`, `logprob/`, `replay/`,
`gate/`, `time/`, `throughput/` (the README lists every key).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from learner.gate import GateStats
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
    replay_duplicates: int = 0  # groups of a prompt position that had arrived before, dropped
    replay_buffered: int = 0  # groups waiting in the replay queue now
    gate: GateStats = field(default_factory=lambda: GateStats(0, 0, 0))
    # Policy versions of what waits: the groups in the replay queue (oldest token each), and the
    # weights each actor held when it last sent a group.
    queued_versions: list[int] = field(default_factory=list)


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


# Actor counters that are running totals (summed over actors); policy_version is a state.
TOTAL_NAMES = tuple(name for name in COUNTER_NAMES if name != "policy_version")


def waiting_staleness(name: str, next_version: int, versions: list[int]) -> dict:
    """`staleness/<name>_min|mean|max`: how old what waits would be if the next step (training
    `next_version`) took it now; null when nothing waits."""
    if not versions:
        return {f"staleness/{name}_{stat}": math.nan for stat in ("min", "mean", "max")}
    age = staleness(next_version, versions)
    return {f"staleness/{name}_min": age.min, f"staleness/{name}_mean": age.mean, f"staleness/{name}_max": age.max}


def count_metrics(counts: RunCounts, actors: dict[int, ActorCounters], times: StepTimes, next_version: int) -> dict:
    """Running totals (the run's, and the actors' as their latest groups told them), staleness of
    what waits in the queue and at the actors, and timings."""
    row = {
        "replay/dropped_stale": counts.dropped_stale,
        "replay/dropped_uniform": counts.dropped_uniform,
        "replay/accepted": counts.replay_accepted,
        "replay/rejected": counts.replay_rejected,
        "replay/duplicates": counts.replay_duplicates,
        "replay/buffered": counts.replay_buffered,
        **{f"gate/{f.name}": getattr(counts.gate, f.name) for f in fields(counts.gate)},
    }
    row.update({f"rollout/{name}": sum(getattr(c, name) for c in actors.values()) for name in TOTAL_NAMES})
    row.update(waiting_staleness("queue", next_version, counts.queued_versions))
    row.update(waiting_staleness("actors", next_version, [c.policy_version for c in actors.values()]))
    row.update({f"time/{f.name}": getattr(times, f.name) for f in fields(times)})
    return row
