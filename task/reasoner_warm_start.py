"""Warm start of the tiny reasoner: answer a counting question from a caption, and only from it.

The reasoner learns to count what the caption names. It is right exactly when the caption
names every object the question is about (and nothing that is not there), wrong when the
caption left one out, and says "cannot tell" when the caption is empty or breaks off.
So its accuracy measures the caption, which is what makes it a reward for the captioner.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from serve.reasoner_prompt import encode_reasoner_prompt
from task.scenes import (
    CountQuestion,
    SceneObject,
    describe,
    parse_caption,
    random_question,
)
from task.sft import SFTSettings, length_bucketed, pack_sequences, supervised_finetune

Scene = tuple[SceneObject, ...]
CANNOT_TELL = "cannot tell"
# Partial captions name each object with this probability: any subset, in any cells, so the
# reasoner counts whatever a caption names (the captioner's are prefixes, RL's anything).
_PARTIAL_KEEP_PROB = 0.5


@dataclass(frozen=True)
class ReasonerExample:
    caption: str
    question: CountQuestion

    @property
    def answer(self) -> str:
        """What a faithful reader of the caption answers."""
        objects = parse_caption(self.caption)
        if not objects:
            return CANNOT_TELL
        return str(self.question.count(objects))

    @property
    def reply(self) -> str:
        """The reasoner's whole reply: a running count over the described objects, then the total boxed.

        "red circle: 1. blue square: 1. red triangle: 2. \\boxed{2}" for "How many red objects?".
        Counting matches in one step is beyond a tiny transformer; copying each object and
        adding one to the last number when it matches are steps it learns quickly.
        """
        objects = parse_caption(self.caption)
        if not objects:
            return f"\\boxed{{{CANNOT_TELL}}}"
        running, steps = 0, []
        for obj in objects:
            running += self.question.count([obj])
            steps.append(f"{obj.colour} {obj.shape}: {running}.")
        return f"{' '.join(steps)} \\boxed{{{running}}}"


def _truncated(caption: str, rng: random.Random) -> str:
    """The caption cut off inside its last object, so it no longer parses."""
    words = caption.split(" ")
    return " ".join(words[: rng.randrange(1, len(words))]).rstrip(".")


def random_example(rng: random.Random, scene: Scene, keep_prob: float = _PARTIAL_KEEP_PROB) -> ReasonerExample:
    """A question about `scene` with a complete, partial, empty or cut-off caption of it."""
    question = random_question(rng, scene)
    kind = rng.random()
    if kind < 0.4:
        caption = describe(scene)
    elif kind < 0.8:
        caption = describe(scene, [obj for obj in scene if rng.random() < keep_prob])
    elif kind < 0.9:
        caption = ""
    else:
        caption = _truncated(describe(scene), rng)
    return ReasonerExample(caption, question)


@dataclass(frozen=True)
class AccuracyBar:
    """When the reasoner's warm start may stop: it answers `examples` (never trained on) this well."""

    examples: Sequence[ReasonerExample]
    min_accuracy: float


def warm_start_reasoner(
    checkpoint: Path, scenes: Sequence[Scene], settings: SFTSettings, seed: int, bar: AccuracyBar
) -> float | None:
    """Fine-tune the reasoner saved at `checkpoint` on captions of `scenes` until it passes `bar`
    (checked every `settings.check_every` steps, at most `settings.steps`); save it back in place.
    Returns its last measured accuracy on the bar's examples (None if never checked)."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    rng = random.Random(f"reasoner-warm-start/{seed}")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(checkpoint)

    def draw() -> tuple[list[int], list[int]]:
        example = random_example(rng, scenes[rng.randrange(len(scenes))])
        prompt = encode_reasoner_prompt(tokenizer, example.caption, example.question.text)
        return prompt, tokenizer.encode(example.reply, add_special_tokens=False) + [tokenizer.eos_token_id]

    batches = length_bucketed(draw, lambda ex: (len(ex[0]), len(ex[1])), settings.batch_size, rng)

    def next_loss(step: int) -> torch.Tensor:
        batch = next(batches)
        packed = pack_sequences([p for p, _ in batch], [t for _, t in batch], tokenizer.pad_token_id)
        return model(input_ids=packed.input_ids, attention_mask=packed.attention_mask, labels=packed.labels).loss

    log = logging.getLogger(__name__)
    measured: list[float] = []

    def answers_well() -> bool:
        model.save_pretrained(checkpoint, safe_serialization=True)
        measured.append(reasoner_accuracy(checkpoint, bar.examples))
        log.info("warm start reasoner: held-out accuracy on complete captions %.3f", measured[-1])
        return measured[-1] >= bar.min_accuracy

    supervised_finetune(list(model.parameters()), next_loss, settings, "reasoner", answers_well)
    model.save_pretrained(checkpoint, safe_serialization=True)
    if settings.check_every and not (measured and measured[-1] >= bar.min_accuracy):
        log.warning(
            "warm start reasoner: still below accuracy %.2f on complete captions after %d steps; rewards "
            "will be capped by its misreadings (raise task.warm_start.reasoner_steps)", bar.min_accuracy, settings.steps,
        )
    return measured[-1] if measured else None


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
