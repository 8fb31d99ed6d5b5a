"""Rank 0's side of evaluation while training (eval.every_steps): it asks the evaluator for a
point when one is due and the evaluator is idle, and writes each result to metrics.jsonl (and
TensorBoard) when it comes back. Nothing here waits during training: an evaluation still running
when the next point falls due defers that point to the next published version.
"""

from __future__ import annotations

import logging

import torch

from coordination.handles import EvalSchedule
from learner.metrics import MetricsLog
from wire.eval_points import EvalPoint, EvalPointResult
from wire.metric_names import EVAL_ACCURACY

log = logging.getLogger(__name__)
# How long the end of training waits for the last evaluations.
FINAL_WAIT_S = 300.0


class EvalRequests:
    def __init__(self, schedule: EvalSchedule, metrics: MetricsLog, next_version: int):
        self.schedule, self.metrics = schedule, metrics
        self.next_version = next_version  # the first version due
        self.asked_version = -1
        self.pending = None  # the evaluator's answer to come (a Ray ObjectRef)
        self.latest: dict = {}  # the newest result's row

    def due(self, version: int) -> bool:
        return self.pending is None and version >= self.next_version

    def ask(self, point: EvalPoint, weights: dict[str, torch.Tensor] | None) -> None:
        """Hand the evaluator `point` with the weights published at it (None: the initial ones)."""
        import ray

        held = (ray.put(weights),) if weights is not None else None
        self.pending = self.schedule.evaluator.evaluate_ref(point, held)
        self.asked_version = point.policy_version
        self.next_version = point.policy_version + self.schedule.every_steps

    def take(self, wait_s: float = 0.0) -> None:
        """Write the pending result if it is back (waiting up to `wait_s`). A failed evaluation is
        logged and training goes on: the evaluation is an observer of the run."""
        import ray

        if self.pending is None:
            return
        done, _ = ray.wait([self.pending], timeout=wait_s)
        if not done:
            return
        pending, self.pending = self.pending, None
        try:
            result: EvalPointResult = ray.get(pending)
        except Exception as err:  # noqa: BLE001 - any failure of the evaluator's
            log.error("evaluation while training failed (training goes on): %s", err)
            return
        self.latest = result.row()
        self.metrics.write(self.latest)
        log.info("held-out accuracy at step %d: %.3f +- %.3f", result.point.step, result.accuracy, result.stderr)

    def finish(self, point: EvalPoint, weights: dict[str, torch.Tensor]) -> None:
        """At the end of training: the pending evaluation, then the final weights' unless asked already."""
        self.take(FINAL_WAIT_S)
        if self.pending is None and point.policy_version != self.asked_version:
            self.ask(point, weights)
            self.take(FINAL_WAIT_S)
        if self.pending is not None:
            log.warning(
                "the last evaluation while training did not end within %.0f s; its point is missing", FINAL_WAIT_S
            )

    def latest_accuracy(self) -> dict:
        return {EVAL_ACCURACY: self.latest[EVAL_ACCURACY]} if self.latest else {}
