"""Warm start of the tiny reasoner: answer from captions (task/reasoner_examples.py), answer
multiple-choice questions from them (task/mcq_examples.py), judge answers and captions
(task/judge_examples.py), so the bundled task can exercise every reward kind; and answer as the
inference modes ask, options listed and the captioner's tentative answer beside the caption
(task/inference_examples.py)."""

from __future__ import annotations

import logging
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from task.inference_examples import InferenceExample, inference_accuracy, random_inference_example
from task.judge_examples import (
    CaptionJudgeExample,
    JudgeExample,
    judge_accuracy,
    random_caption_judge_example,
    random_judge_example,
)
from task.mcq_examples import McqExample, mcq_accuracy, random_mcq_example
from task.reasoner_examples import ReasonerExample, Scene, random_example
from task.sft import SFTSettings, length_bucketed, pack_sequences, supervised_finetune
from vlm.reasoner_prompt import encode_chat, encode_reasoner_prompt

# The shares of warm-start examples that teach multiple choice, and judging (half answers, half
# captions); the rest teach counting. Multiple choice took its share from the other two in
# proportion, so they keep the 30:70 ratio their steps were tuned with.
MC_SHARE = 0.25
JUDGE_SHARE = 0.3 * (1 - MC_SHARE)
# The inference modes' lessons (half two-stage, half caption-only, options listed half the time)
# come out of the counting share: they count as the counting lessons do. A larger share with
# more two-stage prompts (0.2, two thirds; build format 14) slowed the counting itself: after
# 10000 steps the reasoner counted complete captions of four objects right 0.72 of the time
# (format 13: 1.000 from step 6000), miscounting where the caption named one object twice.
INFERENCE_SHARE = 0.15
TWO_STAGE_SHARE = 0.5


@dataclass(frozen=True)
class AccuracyBar:
    """When the reasoner's warm start may stop: it answers `examples`, judges `judged` and answers
    the multiple-choice `asked` (never trained on) this well."""

    examples: Sequence[ReasonerExample]
    judged: Sequence[JudgeExample | CaptionJudgeExample]
    asked: Sequence[McqExample]
    inferred: Sequence[InferenceExample]
    min_accuracy: float


@dataclass(frozen=True)
class PartialSnapshot:
    """A copy of the reasoner saved at the first check where it answers at least `min_accuracy`
    (and below the bar): a weaker reasoner, for runs that train the reasoner itself."""

    path: Path
    min_accuracy: float


@dataclass(frozen=True)
class WarmStartResult:
    accuracy: float | None  # the last measured accuracy on the bar's examples (None if never checked)
    judge_accuracy: float | None
    mc_accuracy: float | None
    inference_accuracy: float | None
    partial_accuracy: float | None  # the snapshot's accuracy (None if none was saved)


def _training_example(rng: random.Random, scenes: Sequence[Scene], tokenizer) -> tuple[list[int], list[int]]:
    """(prompt ids, target ids) of one counting, multiple-choice or judging example about a random scene."""
    scene = scenes[rng.randrange(len(scenes))]
    kind = rng.random()
    if kind < JUDGE_SHARE:
        judged = (
            random_judge_example(rng, scene) if kind < JUDGE_SHARE / 2 else random_caption_judge_example(rng, scene)
        )
        prompt, reply = encode_chat(tokenizer, judged.messages()), judged.reply
    elif kind < JUDGE_SHARE + MC_SHARE:
        asked = random_mcq_example(rng, scene)
        prompt, reply = encode_chat(tokenizer, asked.messages()), asked.reply
    elif kind < JUDGE_SHARE + MC_SHARE + INFERENCE_SHARE:
        inferred = random_inference_example(rng, scene, two_stage=rng.random() < TWO_STAGE_SHARE)
        prompt, reply = encode_chat(tokenizer, inferred.messages()), inferred.reply
    else:
        example = random_example(rng, scene)
        prompt, reply = encode_reasoner_prompt(tokenizer, example.caption, example.question.text), example.reply
    return prompt, tokenizer.encode(reply, add_special_tokens=False) + [tokenizer.eos_token_id]


def warm_start_reasoner(
    checkpoint: Path,
    scenes: Sequence[Scene],
    settings: SFTSettings,
    seed: int,
    bar: AccuracyBar,
    partial: PartialSnapshot,
) -> WarmStartResult:
    """Fine-tune the reasoner saved at `checkpoint` on captions of `scenes` until it passes `bar`
    (checked every `settings.check_every` steps, at most `settings.steps`); save it back in place,
    and the `partial` snapshot on the way."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    rng = random.Random(f"reasoner-warm-start/{seed}")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    batches = length_bucketed(
        lambda: _training_example(rng, scenes, tokenizer), lambda ex: (len(ex[0]), len(ex[1])), settings.batch_size, rng
    )

    def next_loss(step: int) -> torch.Tensor:
        batch = next(batches)
        packed = pack_sequences([p for p, _ in batch], [t for _, t in batch], tokenizer.pad_token_id)
        return model(input_ids=packed.input_ids, attention_mask=packed.attention_mask, labels=packed.labels).loss

    log = logging.getLogger(__name__)
    measured: list[tuple[float, float, float, float]] = []
    partial_accuracy: list[float] = []

    def good_enough() -> bool:
        model.save_pretrained(checkpoint, safe_serialization=True)
        accuracy, judged = reasoner_accuracy(checkpoint, bar.examples), judge_accuracy(checkpoint, bar.judged)
        chosen, inferred = mcq_accuracy(checkpoint, bar.asked), inference_accuracy(checkpoint, bar.inferred)
        measured.append((accuracy, judged, chosen, inferred))
        log.info(
            "warm start reasoner: held-out accuracy %.3f on complete captions, %.3f judging, %.3f multiple choice, "
            "%.3f in the inference modes",
            accuracy,
            judged,
            chosen,
            inferred,
        )
        passed = min(accuracy, judged, chosen, inferred) >= bar.min_accuracy
        if not partial_accuracy and partial.min_accuracy <= accuracy and not passed:
            shutil.copytree(checkpoint, partial.path)
            partial_accuracy.append(accuracy)
        return passed

    supervised_finetune(list(model.parameters()), next_loss, settings, "reasoner", good_enough)
    model.save_pretrained(checkpoint, safe_serialization=True)
    if settings.check_every and not (measured and min(measured[-1]) >= bar.min_accuracy):
        log.warning(
            "warm start reasoner: still below accuracy %.2f on complete captions, judging, multiple choice or the "
            "inference "
            "modes after %d steps; rewards "
            "will be capped by its misreadings (raise task.warm_start.reasoner_steps)",
            bar.min_accuracy,
            settings.steps,
        )
    last = measured[-1] if measured else (None, None, None, None)
    return WarmStartResult(*last, partial_accuracy[0] if partial_accuracy else None)


def reasoner_accuracy(checkpoint: Path, examples: Sequence[ReasonerExample], temperature: float = 1.0) -> float:
    """Fraction of examples on which the reasoner's graded answer equals the faithful reader's."""
    from serve.grading import grade_answer
    from serve.hf_reasoner import TransformersReasoner

    reasoner = TransformersReasoner(str(checkpoint))
    right = 0
    for start in range(0, len(examples), 64):
        chunk = examples[start : start + 64]
        replies = reasoner.answer([(e.caption, e.question.text) for e in chunk], 1, temperature, max_new_tokens=32)
        right += sum(grade_answer(reply, example.answer) for (reply,), example in zip(replies, chunk))
    return right / len(examples)
