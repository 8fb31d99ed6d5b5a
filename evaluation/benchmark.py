"""A captioner and one or more reasoners on a benchmark, in the paper's three modes.

- direct: the captioner answers the question itself, reasoning step by step;
- caption: the captioner describes the image for the question, the reasoner answers from that;
- two_stage: the method's inference: the reasoner reads the caption and the captioner's own
  (tentative) answer, and answers.

The captioner's outputs are generated once and cached by (captioner, prompt, seed)
(evaluation/caption_cache.py): every reasoner reads the same captions, and a later evaluation
with another reasoner generates nothing. Engines are the roles' own, as Ray actors placed as
the roles are (vLLM on GPUs where configured). Needs Ray running.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from actors.engine import SamplingSettings
from configs.commands import EvalCommandConfig
from configs.seeds import derived_seed
from evaluation.benchmark_scoring import grade_item
from evaluation.caption_cache import CaptionCache, image_digest, prompt_key
from evaluation.workers import CaptionWorkerHandle, ReasonerWorkerHandle, start_caption_worker, start_reasoner_worker
from records.benchmarks import BenchmarkItem
from records.vqa import read_records
from vlm.caption_prompt import answer_messages, caption_messages
from vlm.processor import load_captioner_processor
from vlm.reasoner_prompt import reasoner_messages, two_stage_messages
from vlm.sampling import caption_sampling_spec

log = logging.getLogger(__name__)
MODES = ("direct", "caption", "two_stage")
# What each mode needs from the captioner: captions, its own answers, or both.
_NEEDS = {"direct": ("answer",), "caption": ("caption",), "two_stage": ("caption", "answer")}
_MESSAGES = {"caption": caption_messages, "answer": answer_messages}


@dataclass(frozen=True)
class BenchmarkSpec:
    captioner: str
    reasoners: dict[str, str]  # name -> checkpoint
    modes: tuple[str, ...]


@dataclass(frozen=True)
class ItemResult:
    """One response to one item (per mode, reasoner and caption sample), graded."""

    id: str
    category: str
    mode: str
    reasoner: str  # "" in direct mode
    sample: int
    question: str
    gold: str
    caption: str
    tentative_answer: str
    response: str
    extracted: str | None
    correct: bool


def run_benchmark(
    config: EvalCommandConfig, spec: BenchmarkSpec, items: list[BenchmarkItem], records_file: Path
) -> list[ItemResult]:
    """Every item in every mode of `spec`, with every reasoner; `records_file` holds the items'
    prompts as records (records.prepare.prepare_benchmark)."""
    outputs = captioner_outputs(config, spec, items, records_file)
    results = []
    if "direct" in spec.modes:
        for i, item in enumerate(items):
            for s, answer in enumerate(outputs["answer"][i]):
                results.append(_graded(item, "direct", "", s, "", "", answer))
    reasoner_modes = [m for m in spec.modes if m != "direct"]
    for name, checkpoint in spec.reasoners.items() if reasoner_modes else ():
        results += _reasoner_results(config, name, checkpoint, items, outputs, reasoner_modes)
    return results


def caption_sampling(config: EvalCommandConfig, captioner: str) -> SamplingSettings:
    """Captions sampled as the rollout actors sample them, `eval.samples_per_prompt` per item."""
    spec = caption_sampling_spec(config.rollout.sampling, load_captioner_processor(captioner).tokenizer)
    max_new_tokens = config.eval.max_new_tokens or config.rollout.sampling.max_new_tokens
    return SamplingSettings(spec, n=config.eval.samples_per_prompt, max_new_tokens=max_new_tokens)


def captioner_outputs(
    config: EvalCommandConfig, spec: BenchmarkSpec, items: list[BenchmarkItem], records_file: Path
) -> dict[str, list[list[str]]]:
    """For each kind of output the modes need, the captioner's texts for each item: from the
    cache, and generated (then cached) where missing."""
    kinds = sorted({kind for mode in spec.modes for kind in _NEEDS[mode]})
    sampling = caption_sampling(config, spec.captioner)
    seed = derived_seed(config.seed, "eval", "captioner")
    # The engine too: the same seed draws other samples on another engine.
    settings = {
        "n": sampling.n,
        "max_new_tokens": sampling.max_new_tokens,
        "engine": config.rollout.engine,
        **asdict(config.rollout.sampling),
    }
    cache = CaptionCache(
        Path(config.eval.caption_cache or Path(config.task.cache_dir) / "captions"), spec.captioner, seed, settings
    )
    records, root = read_records(records_file)[: len(items)], records_file.parent
    images = [image_digest(r, root) for r in records]  # read once, whatever the kinds
    keys = {
        kind: [prompt_key(kind, _MESSAGES[kind](r.question), image) for r, image in zip(records, images)]
        for kind in kinds
    }
    missing = {kind: [i for i, key in enumerate(keys[kind]) if cache.get(key) is None] for kind in kinds}
    found = sum(len(items) - len(m) for m in missing.values())
    log.info("captioner outputs: %d of %d found in %s", found, len(items) * len(kinds), cache.path)
    if any(missing.values()):
        worker = start_caption_worker(config.rollout, spec.captioner, str(records_file), seed)
        try:
            for kind, indices in missing.items():
                _generate(worker, kind, indices, keys[kind], cache, sampling, config.eval.prompts_per_batch)
        finally:
            worker.close()  # its engine's memory (a GPU's, on GPU configs) goes back before the reasoners start
    return {kind: [cache.get(key) for key in keys[kind]] for kind in kinds}


def _generate(
    worker: CaptionWorkerHandle,
    kind: str,
    indices: list[int],
    keys: list[str],
    cache: CaptionCache,
    sampling: SamplingSettings,
    batch: int,
) -> None:
    batches = [indices[start : start + batch] for start in range(0, len(indices), batch)]
    for chunk in tqdm(batches, desc=f"captioner ({kind}s)", unit="batch", dynamic_ncols=True):
        groups = worker.captions(chunk, sampling, kind)
        cache.put({keys[i]: [text for text, _ in group] for i, group in zip(chunk, groups)})


def _reasoner_results(
    config: EvalCommandConfig, name: str, checkpoint: str, items: list[BenchmarkItem], outputs: dict, modes: list[str]
) -> list[ItemResult]:
    worker = start_reasoner_worker(config.serve, checkpoint, derived_seed(config.seed, "eval", "reasoner"))
    results = []
    try:
        for mode in modes:
            asked = [
                (item, s, caption, outputs["answer"][i][s] if mode == "two_stage" else "")
                for i, item in enumerate(items)
                for s, caption in enumerate(outputs["caption"][i])
            ]
            replies = _replies(worker, mode, asked, config.eval.prompts_per_batch, f"reasoner {name} ({mode})")
            results += [
                _graded(item, mode, name, s, caption, tentative, reply)
                for (item, s, caption, tentative), reply in zip(asked, replies)
            ]
    finally:
        worker.close()
    return results


def _replies(worker: ReasonerWorkerHandle, mode: str, asked: list[tuple], batch: int, label: str) -> list[str]:
    """The reasoner's reply to each (item, sample, caption, tentative answer); an empty caption
    says nothing and gets no call (an empty reply, graded wrong), as in the reasoner pool."""
    replies = [""] * len(asked)
    wanted = [j for j, (_, _, caption, _) in enumerate(asked) if caption.strip()]
    for start in tqdm(range(0, len(wanted), batch), desc=label, unit="batch", dynamic_ncols=True):
        chunk = wanted[start : start + batch]
        conversations = [_conversation(mode, *asked[j]) for j in chunk]
        for j, reply in zip(chunk, worker.replies(conversations)):
            replies[j] = reply
    return replies


def _conversation(mode: str, item: BenchmarkItem, sample: int, caption: str, tentative: str) -> list[dict]:
    if mode == "two_stage":
        return two_stage_messages(caption, item.prompt(), tentative)
    return reasoner_messages(caption, item.prompt())


def _graded(
    item: BenchmarkItem, mode: str, reasoner: str, sample: int, caption: str, tentative: str, response: str
) -> ItemResult:
    grade = grade_item(item, response)
    return ItemResult(
        id=item.id,
        category=item.category,
        mode=mode,
        reasoner=reasoner,
        sample=sample,
        question=item.prompt(),
        gold=item.answer,
        caption=caption,
        tentative_answer=tentative,
        response=response,
        extracted=grade.extracted,
        correct=grade.correct,
    )
