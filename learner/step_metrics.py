"""The row a learner step writes to metrics.jsonl, built from typed pieces.

Key namespaces: `reward/`, `staleness/`, `rollout/`, `reasoner/`, `loss/`, `correction/`, `logprob/`, `replay/`,
`gate/`, `time/`, `throughput/`; each key is named once, in wire/metric_names.py (the README lists every key).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from coordination.gate import GateStats
from learner.staleness import staleness
from learner.update import UpdateStats
from wire import metric_names as names
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
        names.REWARD_MEAN: float(rewards.mean()),
        names.REWARD_STD: float(rewards.std()),
        names.STALENESS_MIN: age.min,
        names.STALENESS_MEAN: age.mean,
        names.STALENESS_MAX: age.max,
        names.ROLLOUT_POLICY_VERSION_MAX: max(versions),
        names.ROLLOUT_POLICY_VERSION_MIN: min(versions),
        names.ROLLOUT_MIXED_VERSION_FRACTION: mixed / len(versions),
        names.REASONER_LATENCY_S: float(np.mean([g.timings.score_s for g in groups])),
        names.ROLLOUT_GENERATE_S: float(np.mean([g.timings.generate_s for g in groups])),
    }


def update_metrics(stats: UpdateStats, captions: int, correction_kind: str) -> dict:
    """The update's row. The clip fractions only under correction kind `none`: the other kinds
    clip pi / pi_prox, which is 1, so there they could only ever read 0 (learner/corrections.py)."""
    clipping = {names.LOSS_CLIP_FRACTION: stats.clip_fraction, names.LOSS_DUAL_CLIP_FRACTION: stats.dual_clip_fraction}
    return {
        names.ROLLOUT_CAPTION_TOKENS_MEAN: stats.tokens / captions,  # tokens summed over ranks
        names.LOSS_TOTAL: stats.loss,
        names.LOSS_POLICY: stats.pg_loss,
        names.LOSS_KL: stats.kl,
        **(clipping if correction_kind == "none" else {}),
        names.LOSS_RATIO_MEAN: stats.ratio_mean,
        names.LOSS_RATIO_MAX: stats.ratio_max,
        names.CORRECTION_WEIGHT_MEAN: stats.weight_mean,
        names.CORRECTION_WEIGHT_MAX: stats.weight_max,
        names.CORRECTION_CORRECTED_FRACTION: stats.corrected_fraction,
        names.LOSS_GRAD_NORM: stats.grad_norm,
        names.LOGPROB_ON_POLICY_ABS_DIFF: stats.on_policy_logprob_diff,
    }


# Actor counters that are running totals (summed over actors); policy_version is a state.
TOTAL_NAMES = tuple(name for name in COUNTER_NAMES if name != "policy_version")


def waiting_staleness(where: str, next_version: int, versions: list[int]) -> dict:
    """`staleness/<where>_min|mean|max`: how old what waits would be if the next step (training
    `next_version`) took it now; null when nothing waits."""
    if not versions:
        return {names.waiting_staleness(where, stat): math.nan for stat in ("min", "mean", "max")}
    age = staleness(next_version, versions)
    return {names.waiting_staleness(where, stat): getattr(age, stat) for stat in ("min", "mean", "max")}


def count_metrics(counts: RunCounts, actors: dict[int, ActorCounters], times: StepTimes, next_version: int) -> dict:
    """Running totals (the run's, and the actors' as their latest groups told them), staleness of
    what waits in the queue and at the actors, and timings."""
    row = {
        names.REPLAY_DROPPED_STALE: counts.dropped_stale,
        names.REPLAY_DROPPED_UNIFORM: counts.dropped_uniform,
        names.REPLAY_ACCEPTED: counts.replay_accepted,
        names.REPLAY_REJECTED: counts.replay_rejected,
        names.REPLAY_DUPLICATES: counts.replay_duplicates,
        names.REPLAY_BUFFERED: counts.replay_buffered,
        **{names.gate_metric(f.name): getattr(counts.gate, f.name) for f in fields(counts.gate)},
    }
    row.update({names.actors_total(name): sum(getattr(c, name) for c in actors.values()) for name in TOTAL_NAMES})
    row.update(waiting_staleness("queue", next_version, counts.queued_versions))
    row.update(waiting_staleness("actors", next_version, [c.policy_version for c in actors.values()]))
    row.update({names.time_metric(f.name): getattr(times, f.name) for f in fields(times)})
    return row
