"""The names of the metrics a learner step reports: the keys of its metrics.jsonl row, of the
latest step the driver reads (coordination/reports.py `StepMetrics`), and its TensorBoard tags.

Defined once here: the learner writes them, the progress bar, the summary, the benchmarks and the
tests read them. Each is a user-visible name (dashboards are built on the TensorBoard tags), so a
name never changes; a new metric is a new name. Namespaces: `reward/`, `staleness/`, `rollout/`,
`reasoner/`, `loss/`, `correction/`, `logprob/`, `replay/`, `gate/`, `time/`, `throughput/`, and
`eval/` for the rows of evaluations while training (wire/eval_points.py).
"""

from __future__ import annotations

# Every row: the step it reports (the version it trained) and the version it published.
STEP = "step"
POLICY_VERSION = "policy_version"

# The step's samples.
REWARD_MEAN = "reward/mean"
REWARD_STD = "reward/std"
STALENESS_MIN = "staleness/min"
STALENESS_MEAN = "staleness/mean"
STALENESS_MAX = "staleness/max"
ROLLOUT_POLICY_VERSION_MAX = "rollout/policy_version_max"
ROLLOUT_POLICY_VERSION_MIN = "rollout/policy_version_min"
ROLLOUT_MIXED_VERSION_FRACTION = "rollout/mixed_version_fraction"
ROLLOUT_GENERATE_S = "rollout/generate_s"
ROLLOUT_CAPTION_TOKENS_MEAN = "rollout/caption_tokens_mean"
REASONER_LATENCY_S = "reasoner/latency_s"

# The update.
LOSS_TOTAL = "loss/total"
LOSS_POLICY = "loss/policy"
LOSS_KL = "loss/kl"
LOSS_CLIP_FRACTION = "loss/clip_fraction"
LOSS_DUAL_CLIP_FRACTION = "loss/dual_clip_fraction"
LOSS_RATIO_MEAN = "loss/ratio_mean"
LOSS_RATIO_MAX = "loss/ratio_max"
LOSS_GRAD_NORM = "loss/grad_norm"
CORRECTION_WEIGHT_MEAN = "correction/weight_mean"
CORRECTION_WEIGHT_MAX = "correction/weight_max"
CORRECTION_CORRECTED_FRACTION = "correction/corrected_fraction"
LOGPROB_ON_POLICY_ABS_DIFF = "logprob/on_policy_abs_diff"

# The run's running totals, as rank 0 counts them.
REPLAY_DROPPED_STALE = "replay/dropped_stale"
REPLAY_DROPPED_UNIFORM = "replay/dropped_uniform"
REPLAY_ACCEPTED = "replay/accepted"
REPLAY_REJECTED = "replay/rejected"
REPLAY_DUPLICATES = "replay/duplicates"
REPLAY_BUFFERED = "replay/buffered"

# Timings and rate.
THROUGHPUT_CAPTIONS_PER_S = "throughput/captions_per_s"
TIME_STEP_S = "time/step_s"
TIME_ELAPSED_S = "time/elapsed_s"

# Evaluation while training: rows of their own, told apart by EVAL_ACCURACY.
EVAL_ACCURACY = "eval/accuracy"
EVAL_STDERR = "eval/stderr"
EVAL_POLICY_VERSION = "eval/policy_version"
EVAL_ELAPSED_S = "eval/elapsed_s"
EVAL_NUM_PROMPTS = "eval/num_prompts"
EVAL_SECONDS = "eval/seconds"


def gate_metric(name: str) -> str:
    """`gate/<name>`: a counter of the staleness gate (coordination/gate.py `GateStats`)."""
    return f"gate/{name}"


def actors_total(name: str) -> str:
    """`rollout/<name>`: an actor counter (wire/scored_group.py `ActorCounters`) summed over actors."""
    return f"rollout/{name}"


def waiting_staleness(where: str, stat: str) -> str:
    """`staleness/<where>_<stat>`: how old what waits (`queue`, `actors`) would be; stat min|mean|max."""
    return f"staleness/{where}_{stat}"


def time_metric(name: str) -> str:
    """`time/<name>`: a part of the step (learner/step_metrics.py `StepTimes`), in seconds."""
    return f"time/{name}"


# The ones tests and benchmarks name most.
GATE_ADMITTED = gate_metric("admitted")
GATE_GIVEN_BACK = gate_metric("given_back")
ROLLOUT_GROUPS_GENERATED = actors_total("groups_generated")
ROLLOUT_GROUPS_LOST = actors_total("groups_lost")
ROLLOUT_SCORE_FAILURES = actors_total("score_failures")
STALENESS_QUEUE_MIN = waiting_staleness("queue", "min")
STALENESS_QUEUE_MEAN = waiting_staleness("queue", "mean")
STALENESS_QUEUE_MAX = waiting_staleness("queue", "max")
STALENESS_ACTORS_MIN = waiting_staleness("actors", "min")
STALENESS_ACTORS_MAX = waiting_staleness("actors", "max")
