"""The bundled reasoner's lessons for the inference modes (RACRO): counting questions asked as a
benchmark asks them, with their options listed, and the two-stage prompt, where the captioner's own
tentative answer comes beside the caption.

The reply follows the caption: its running count, boxed ("red circle: 1. blue square: 1.
\\boxed{1}"), options listed or not. With options listed the boxed count is the option's text, which
the graders read as that option: looking up the count's letter among the options, the step the
multiple-choice lessons take, was right about half the time in the inference modes after 10000
warm-start steps (build format 13), while the count itself was right almost always. The tentative
answer may be wrong, or garbled the way a captioner trained only on its captions writes it (steps
repeated or without counts, a box left open), and is never followed against the caption; the prompt
hands on only its boxed value (wire/reasoner_prompt.py). Only where the caption names nothing
(empty, a mark, a bare answer, cut off) does the reply take that value ("\\boxed{2}"); without one
either, it cannot tell. So the two-stage answer is right wherever the caption-only answer is, and
more often.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from task.direct_answers import DirectAnswer, listed_question
from task.reasoner_examples import (
    CANNOT_TELL,
    PARTIAL_KEEP_PROB,
    content_free_caption,
    counting_steps,
    running_count,
    running_totals,
    truncated,
)
from task.scenes import CountQuestion, SceneObject, describe, parse_caption, random_question
from vlm.boxed import boxed_parts
from vlm.reasoner_prompt import reasoner_messages, two_stage_messages
from wire.scoring import multiple_choice_text

Scene = tuple[SceneObject, ...]
# How often the lessons' tentative answer is the captioner's right reply, one that walks the same
# objects but counts them wrong, one that missed objects, or a garbled one; else no boxed answer.
# Miscounted ones are the trained captioner's usual mistake (build format 16: its direct answers
# walked the caption's objects with counts off by one and boxed them), and the one that pulled the
# reasoner's own count after the tentative's: with only right tentatives walking the same objects,
# copying their counts had never been wrong.
_RIGHT_TENTATIVE = 0.4
_MISCOUNTED_TENTATIVE = 0.25
_MISSED_TENTATIVE = 0.15
_GARBLED_TENTATIVE = 0.1
# What a garbled reply trails off with, as a captioner's own answers decayed after training only its
# captions (build format 15's trained captioner: 17% of its direct answers were unboxed).
_OPEN_ENDINGS = ("\\boxed{{{n}.", "\\boxed{{{n}. \\boxed{{{n}.", "\\boxed{{", "\\boxed{{{n}. bottom left:", "")


@dataclass(frozen=True)
class InferenceExample:
    """A counting question asked of a caption, options listed or not, the tentative answer given or not."""

    caption: str
    question: CountQuestion
    choices: tuple[str, ...] = ()  # lettered A, B, ... under the question; () = none listed
    tentative: str | None = None  # the captioner's own answer (the two-stage prompt); None = caption only

    @property
    def letters(self) -> str:
        return "ABCDEFGHIJ"[: len(self.choices)]

    @property
    def asked(self) -> str:
        return (
            multiple_choice_text(self.question.text, self.letters, self.choices) if self.choices else self.question.text
        )

    def messages(self) -> list[dict]:
        if self.tentative is None:
            return reasoner_messages(self.caption, self.asked)
        return two_stage_messages(self.caption, self.asked, self.tentative)

    @property
    def answer(self) -> str:
        """What the reply boxes: the count (an option's text when options are listed), or "cannot tell"."""
        return self._value() or CANNOT_TELL

    def _value(self) -> str | None:
        objects = parse_caption(self.caption)
        if objects:
            return str(self.question.count(objects))
        hint = boxed_parts(self.tentative or "")
        return hint[-1] if hint else None

    @property
    def reply(self) -> str:
        box = f"\\boxed{{{self.answer}}}"
        objects = parse_caption(self.caption)
        if not objects:
            return box  # nothing to count: the tentative answer's value, or cannot tell
        return f"{running_count(objects, self.question)} {box}"


def _caption(rng: random.Random, scene: Scene) -> str:
    """Complete, partial, content-free or cut off, in the counting lessons' proportions."""
    kind = rng.random()
    if kind < 0.4:
        return describe(scene)
    if kind < 0.8:
        return describe(scene, [obj for obj in scene if rng.random() < PARTIAL_KEEP_PROB])
    return content_free_caption(rng) if kind < 0.9 else truncated(describe(scene), rng)


def _tentative(rng: random.Random, scene: Scene, question: CountQuestion) -> str:
    """The captioner's answer: right, miscounted, missing objects, garbled, or without a boxed answer."""
    kind = rng.random()
    seen = tuple(obj for obj in scene if rng.random() < PARTIAL_KEEP_PROB) or scene[:1]
    for share, tentative in (
        (_RIGHT_TENTATIVE, lambda: DirectAnswer(scene, question, question.text).reply),
        (_MISCOUNTED_TENTATIVE, lambda: miscounted_tentative(rng, scene, question)),
        (_MISSED_TENTATIVE, lambda: DirectAnswer(seen, question, question.text).reply),
        (_GARBLED_TENTATIVE, lambda: garbled_tentative(rng, rng.choice((scene, seen)))),
    ):
        if kind < share:
            return tentative()
        kind -= share
    return rng.choice(("", describe(scene), "I cannot see it."))


def miscounted_tentative(rng: random.Random, scene: Scene, question: CountQuestion) -> str:
    """Every object walked, the running count wrong and its last value boxed: shifted by one
    throughout, off by one here and there, or counting every object whatever it is."""
    counts = running_totals(scene, question)
    mistake = rng.choice(("shifted", "scattered", "every"))
    if mistake == "shifted":
        shift = rng.choice((-1, 1))
        counts = [max(0, c + shift) for c in counts]
    elif mistake == "scattered":
        counts = [max(0, c + rng.choice((-1, 0, 1))) for c in counts]
    else:
        counts = list(range(1, len(scene) + 1))
    return f"{counting_steps(scene, counts)} \\boxed{{{counts[-1]}}}"


def garbled_tentative(rng: random.Random, scene: Scene) -> str:
    """A running count gone wrong: steps repeated, their counts off or missing, the box left open, so
    that no boxed value can be read from it."""
    steps = []
    for obj in scene:
        step = f"{obj.colour} {obj.shape}"
        roll = rng.random()
        steps.append(step + "." if roll < 0.3 else f"{step}: {rng.randrange(0, len(scene) + 1)}.")
        if rng.random() < 0.25:
            steps.append(steps[-1])
    ending = rng.choice(_OPEN_ENDINGS).format(n=rng.randrange(0, len(scene) + 1))
    return " ".join([*steps, ending]).strip()


def _choices(rng: random.Random, scene: Scene, question: CountQuestion) -> tuple[str, ...]:
    """Four counts listed as a benchmark lists them (`listed_question`), the right one among them."""
    listed = listed_question(rng, question, str(question.count(scene)))
    return tuple(line.split(") ", 1)[1] for line in listed.splitlines() if line.startswith("("))


def random_inference_example(rng: random.Random, scene: Scene, two_stage: bool) -> InferenceExample:
    """A question about `scene` with a caption of it, options listed half the time, and (for the
    two-stage prompt) the captioner's tentative answer."""
    question = random_question(rng, scene)
    choices = _choices(rng, scene, question) if rng.random() < 0.5 else ()
    tentative = _tentative(rng, scene, question) if two_stage else None
    return InferenceExample(_caption(rng, scene), question, choices, tentative)


def inference_check_example(rng: random.Random, scene: Scene) -> InferenceExample:
    """A held-out two-stage question: a complete caption (its count wins over any tentative answer),
    or an empty one beside the captioner's right answer (the reply must take it)."""
    question = random_question(rng, scene)
    choices = _choices(rng, scene, question) if rng.random() < 0.5 else ()
    right = DirectAnswer(scene, question, question.text).reply
    if rng.random() < 0.7:
        return InferenceExample(describe(scene), question, choices, _tentative(rng, scene, question))
    return InferenceExample("", question, choices, right)


def inference_accuracy(
    checkpoint: Path, examples: Sequence[InferenceExample], temperature: float = 1.0, max_new_tokens: int = 64
) -> float:
    """The share of `examples` whose sampled reply boxes what the example's reply boxes."""
    from serve.completion import CompletionParams
    from serve.hf_reasoner import TransformersReasoner

    reasoner = TransformersReasoner(str(checkpoint))
    params = CompletionParams(temperature=temperature, max_tokens=max_new_tokens)
    right = 0
    for start in range(0, len(examples), 64):
        chunk = examples[start : start + 64]
        results = reasoner.complete([e.messages() for e in chunk], params)
        right += sum(boxed_parts(r.choices[0].text)[-1:] == [e.answer] for r, e in zip(results, chunk))
    return right / len(examples)
