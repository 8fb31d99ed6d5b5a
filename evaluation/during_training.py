"""Held-out accuracy while training runs (`eval.every_steps`).

The evaluator is a Ray actor with engines of its own, a captioner placed as a rollout actor is
and a reasoner placed as a pool replica is, so the learner and the actors never wait for it. The
learner hands it the weights it has just published to the actors (the same tensors) with the
step, version and wall-clock time; the evaluator loads them before an evaluation and only then,
so an evaluation never sees weights change mid-batch, and it checks that its engine still holds
that version when the evaluation ends. Every evaluation reads the same fixed subset of the eval
split (its first `eval.subset_prompts` prompts, `eval.subset_samples` captions each), so the points
of a run, and of runs with the same seed, compare on equal terms.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import ray

from configs.schema import TrainConfig
from configs.seeds import derived_seed
from coordination.handles import EvaluatorHandle
from evaluation.heldout import EvalWorkers, evaluate_captioner
from evaluation.pipeline import eval_settings
from evaluation.workers import start_caption_worker, start_reasoner_worker
from records.vqa import read_records
from vlm.sampling import SamplingSpec
from wire.eval_points import EvalPoint, EvalPointResult

log = logging.getLogger(__name__)


class TrainingEvaluator:
    """Evaluates the published weights it is handed, one point at a time."""

    def __init__(self, config: TrainConfig, captioner: str, reasoner: str, eval_file: str, sampling: SamplingSpec):
        settings = eval_settings(config, sampling)
        self.settings = replace(
            settings,
            max_prompts=config.eval.subset_prompts,
            caption_sampling=replace(settings.caption_sampling, n=config.eval.subset_samples),
        )
        self.records = read_records(Path(eval_file))
        self.captioner = captioner
        self.workers = EvalWorkers(
            start_caption_worker(
                config.rollout, captioner, eval_file, derived_seed(config.seed, "eval-during", "captioner")
            ),
            start_reasoner_worker(config.serve, reasoner, derived_seed(config.seed, "eval-during", "reasoner")),
        )

    def evaluate(self, point: EvalPoint, weights: tuple[ray.ObjectRef] | None) -> EvalPointResult:
        """Held-out accuracy of the weights of `point`: `weights` holds the reference to the published
        tensors (in a tuple, so that Ray passes the reference on to the engine's actor instead of
        copying the tensors into this one); None: the initial weights, which the engine holds."""
        if weights is not None:
            self.workers.captioner.load_published(point.policy_version, weights[0])
        result = evaluate_captioner(
            f"step {point.step}", self.captioner, self.workers, self.records, self.settings, progress=False
        )
        held = self.workers.captioner.policy_version()
        if held != point.policy_version:  # only this actor loads weights, between evaluations
            raise RuntimeError(f"the evaluation of v{point.policy_version} ended on weights v{held}")
        return EvalPointResult(point, result.accuracy, result.stderr, result.num_prompts, result.seconds)

    def close(self) -> None:
        self.workers.captioner.close()
        self.workers.reasoner.close()


def start_training_evaluator(
    config: TrainConfig, captioner: str, reasoner: str, eval_file: str, sampling: SamplingSpec
) -> EvaluatorHandle:
    """The evaluator's actor, which holds no engine itself (no CPU of its own); its engines build
    while the other roles start, and its first evaluation waits for them."""
    return EvaluatorHandle(
        ray.remote(TrainingEvaluator).options(num_cpus=0).remote(config, captioner, reasoner, eval_file, sampling)
    )
