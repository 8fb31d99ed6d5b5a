"""Evaluation while training (eval.every_steps): what the learner asks of the evaluator and what
comes back, as the row metrics.jsonl keeps.

The learner hands the evaluator the weights it has just published to the actors, with this
point; the evaluator answers with the held-out accuracy of exactly those weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wire.metric_names import (
    EVAL_ACCURACY,
    EVAL_ELAPSED_S,
    EVAL_NUM_PROMPTS,
    EVAL_POLICY_VERSION,
    EVAL_SECONDS,
    EVAL_STDERR,
    STEP,
)


@dataclass(frozen=True)
class EvalPoint:
    step: int  # the learner steps done when the weights were published
    policy_version: int  # the version of those weights
    elapsed_s: float  # the run's wall-clock seconds at their publication


@dataclass(frozen=True)
class EvalPointResult:
    point: EvalPoint
    accuracy: float  # held-out accuracy on the fixed subset
    stderr: float  # its standard error over prompts
    num_prompts: int
    seconds: float  # how long the evaluation took (it ran beside training)

    def __post_init__(self) -> None:
        if not (0.0 <= self.accuracy <= 1.0):
            raise ValueError(f"an accuracy is in [0, 1], not {self.accuracy}")

    def row(self) -> dict[str, float | int]:
        """The metrics.jsonl row: `step` is the evaluated step, so the row sits on the training curve."""
        return {
            STEP: self.point.step,
            EVAL_ACCURACY: self.accuracy,
            EVAL_STDERR: self.stderr if math.isfinite(self.stderr) else float("nan"),
            EVAL_POLICY_VERSION: self.point.policy_version,
            EVAL_ELAPSED_S: self.point.elapsed_s,
            EVAL_NUM_PROMPTS: self.num_prompts,
            EVAL_SECONDS: self.seconds,
        }
