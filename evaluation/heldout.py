"""Held-out accuracy of the two-stage pipeline: the captioner describes, the reasoner answers.

Prompts come from the eval split, which training never sees. Each prompt gets
`eval.samples_per_prompt` captions sampled as the rollout actors sample them, one reasoner answer per
caption, graded like the reward. The spread is reported as the standard error over prompts,
so a before/after difference can be read against it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from actors.engine import CaptionRequest, SamplingSettings
from records.vqa import VQARecord, load_image, read_records
from serve.grading import grade_answer
from vlm.caption_prompt import encode_caption_prompt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalSettings:
    max_prompts: int  # 0 = the whole eval split
    prompts_per_batch: int
    caption_sampling: SamplingSettings  # n = captions per prompt
    reasoner_temperature: float
    reasoner_max_new_tokens: int
    seed: int


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


def _per_prompt_accuracy(engine, reasoner, records: list[VQARecord], root: Path, settings: EvalSettings):
    requests = [
        CaptionRequest(r.id, encode_caption_prompt(engine.processor, r.question, load_image(r, root))) for r in records
    ]
    groups = asyncio.run(engine.generate(requests, settings.caption_sampling))
    prompts = [(sample.text, r.question) for r, group in zip(records, groups) for sample in group]
    replies = reasoner.answer(prompts, 1, settings.reasoner_temperature, settings.reasoner_max_new_tokens)
    k = settings.caption_sampling.n
    accuracies, lengths = [], []
    for i, (record, group) in enumerate(zip(records, groups)):
        grades = [grade_answer(reply, record.answer) for (reply,) in replies[i * k : (i + 1) * k]]
        accuracies.append(sum(grades) / k)
        lengths.extend(len(sample.token_ids) for sample in group)
    return accuracies, lengths


def evaluate_captioner(
    label: str, captioner: str, reasoner, eval_file: Path, settings: EvalSettings
) -> EvalResult:
    """Run the pipeline with `captioner` over the held-out records; `reasoner` is a loaded engine."""
    from actors.hf_engine import TransformersCaptionEngine

    started = time.perf_counter()
    engine = TransformersCaptionEngine(captioner, seed=settings.seed)
    records = read_records(eval_file)
    if settings.max_prompts:
        records = records[: settings.max_prompts]
    accuracies, lengths = [], []
    batches = range(0, len(records), settings.prompts_per_batch)
    for start in tqdm(batches, desc=f"held-out eval ({label})", unit="batch", dynamic_ncols=True):
        batch = records[start : start + settings.prompts_per_batch]
        batch_accuracy, batch_lengths = _per_prompt_accuracy(engine, reasoner, batch, Path(eval_file).parent, settings)
        accuracies += batch_accuracy
        lengths += batch_lengths
    result = EvalResult(
        label=label,
        captioner=str(captioner),
        accuracy=statistics.fmean(accuracies),
        stderr=statistics.stdev(accuracies) / math.sqrt(len(accuracies)) if len(accuracies) > 1 else float("nan"),
        num_prompts=len(records),
        samples_per_prompt=settings.caption_sampling.n,
        mean_caption_tokens=statistics.fmean(lengths),
        seconds=time.perf_counter() - started,
    )
    log.info("held-out accuracy (%s): %.3f +- %.3f", label, result.accuracy, result.stderr)
    return result
