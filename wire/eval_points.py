"""Evaluation while training (eval.every_steps): what the learner asks of the evaluator and what
comes back, as the row metrics.jsonl keeps.

The learner hands the evaluator the weights it has just published to the actors, with this
point; the evaluator answers with the held-out accuracy of exactly those weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The key every evaluation row of metrics.jsonl has and no step row has.
EVAL_ACCURACY = "eval/accuracy"


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
            "step": self.point.step,
            EVAL_ACCURACY: self.accuracy,
            "eval/stderr": self.stderr if math.isfinite(self.stderr) else float("nan"),
            "eval/policy_version": self.point.policy_version,
            "eval/elapsed_s": self.point.elapsed_s,
            "eval/num_prompts": self.num_prompts,
            "eval/seconds": self.seconds,
        }


@dataclass(frozen=True)
class EvalSchedule:
    """When the learner asks for an evaluation: at the first published version at least
    `every_steps` after the last one evaluated, and for the final weights."""

    evaluator: object  # the evaluator's Ray actor handle (evaluation/during_training.py)
    every_steps: int
