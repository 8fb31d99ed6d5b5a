"""Held-out accuracy of the two-stage pipeline: the captioner describes, the reasoner answers.

Prompts come from the eval split, which training never sees. Each prompt gets
`eval.samples_per_prompt` captions sampled as the rollout actors sample them, one reasoner answer per
caption, graded like the reward. The spread is reported as the standard error over prompts,
so a before/after difference can be read against it.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ray
from tqdm import tqdm

from actors.engine import SamplingSettings
from records.vqa import VQARecord

if TYPE_CHECKING:
    from evaluation.workers import CaptionWorkerHandle, ReasonerWorkerHandle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalSettings:
    max_prompts: int  # 0 = the whole eval split
    prompts_per_batch: int
    caption_sampling: SamplingSettings  # n = captions per prompt


@dataclass(frozen=True)
class EvalWorkers:
    """Ray actors of `evaluation.workers`: a captioner engine and a reasoner engine."""

    captioner: CaptionWorkerHandle
    reasoner: ReasonerWorkerHandle


@dataclass(frozen=True)
class EvalResult:
    """Accuracy of one captioner (with the reasoner) on the held-out prompts."""

    label: str
    captioner: str
    accuracy: float
    # Standard error of `accuracy` over prompts.
    stderr: float
    num_prompts: int
    samples_per_prompt: int
    mean_caption_tokens: float
    seconds: float


def _batches(count: int, size: int, max_prompts: int) -> list[list[int]]:
    total = min(count, max_prompts) if max_prompts else count
    return [list(range(start, min(start + size, total))) for start in range(0, total, size)]


def evaluate_captioner(
    label: str,
    captioner: str,
    workers: EvalWorkers,
    records: list[VQARecord],
    settings: EvalSettings,
    progress: bool = True,
) -> EvalResult:
    """Run the pipeline with `workers.captioner` (an engine of the `captioner` checkpoint) over `records`.

    The captioner samples the next batch while the reasoner grades this one. `progress` False: no
    progress bar (an evaluation beside training, whose own bar is on screen).
    """
    started = time.perf_counter()
    batches = _batches(len(records), settings.prompts_per_batch, settings.max_prompts)
    accuracies, lengths = [], []
    pending = workers.captioner.captions_ref(batches[0], settings.caption_sampling)
    shown = tqdm(batches, desc=f"held-out eval ({label})", unit="batch", dynamic_ncols=True, disable=not progress)
    for i, batch in enumerate(shown):
        groups = ray.get(pending)
        if i + 1 < len(batches):
            pending = workers.captioner.captions_ref(batches[i + 1], settings.caption_sampling)
        asked = [records[index] for index, group in zip(batch, groups) for _ in group]
        texts = [text for group in groups for text, _ in group]
        grades = workers.reasoner.grades(texts, [r.question for r in asked], [r.answer for r in asked])
        k = settings.caption_sampling.n
        accuracies += [sum(grades[j * k : (j + 1) * k]) / k for j in range(len(batch))]
        lengths += [tokens for group in groups for _, tokens in group]
    result = EvalResult(
        label=label,
        captioner=str(captioner),
        accuracy=statistics.fmean(accuracies),
        stderr=statistics.stdev(accuracies) / math.sqrt(len(accuracies)) if len(accuracies) > 1 else float("nan"),
        num_prompts=len(accuracies),
        samples_per_prompt=settings.caption_sampling.n,
        mean_caption_tokens=statistics.fmean(lengths),
        seconds=time.perf_counter() - started,
    )
    log.info("held-out accuracy (%s): %.3f +- %.3f", label, result.accuracy, result.stderr)
    return result
