"""The bundled reasoner's multiple-choice lessons (reward.kind=mcq, CapRL): answer a question about
the image from the caption alone, as the reward asks it (its options shuffled and lettered, "cannot
be answered" last), in a boxed form the reward reads (`serve.rewards.mcq_correct`).

Each reply is a few copies, steps a tiny transformer learns:
- the total count: the running count of the counting lessons, then the letter listed before the
  count: "red circle: 1. blue square: 2. 2 is (B). \\boxed{B}";
- a cell question: walk the caption's objects with their cells, as the counting lessons walk them,
  up to the asked cell, then box the asked option's text, which the reward reads as that option:
  "top left: red circle. top right: blue square. \\boxed{blue}" for the colour in the top right.
  Walking is a copy of the next object each step; jumping straight to the asked cell (looking it
  up in the caption) was right at most half the time after 5000 warm-start steps. And the text, not
  its letter: a colour or shape word also stands in the caption, and looking up the letter before
  the option's copy among those stayed at chance after 5000 steps (a count, which only the
  options hold, was looked up without a miss);
- a caption that does not name the asked cell (walked to its end, then "bottom left: none.
  \\boxed{E}"), or names no object at all, being empty, cut off or not a description ("B", ".",
  "The answer is A"): the letter of the last option, the one saying the caption cannot answer.
So the reasoner is right exactly when the caption names what is asked; a caption that names only a
letter or an option scores nothing, instead of whatever guessing from it would win.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from configs.schema import McqRewardConfig, ServeConfig
from serve.rewards import McqAsk, mcq_asks, mcq_correct
from task.dataset import cell_question, total_question
from task.reasoner_examples import PARTIAL_KEEP_PROB, running_count, truncated
from task.scenes import ATTRIBUTE_OPTIONS, CELL_NAMES, CellQuestion, CountQuestion, SceneObject, describe, parse_caption
from vlm.reasoner_prompt import reasoner_messages

Scene = tuple[SceneObject, ...]
McqQuestion = CountQuestion | CellQuestion  # a CountQuestion here is the total count, the only one asked
# The option the reward adds last; the bundled reasoner learns the default wording.
CANNOT_ANSWER = McqRewardConfig().cannot_answer
# A quarter of the lessons ask the total, as the reward does (it is one of an image's four questions).
_TOTAL_SHARE = 1 / 4
# Captions that describe nothing but name an answer, as a captioner gaming a guessing reader might
# write: each form filled with one of the ask's letters or option texts.
_ANSWER_ONLY_FORMS = ("{}", "({})", "{}.", "The answer is {}.", "\\boxed{{{}}}")


@dataclass(frozen=True)
class McqExample:
    caption: str
    question: McqQuestion
    ask: McqAsk  # the question as the reward asks it: options shuffled and lettered, cannot-answer last

    def __post_init__(self) -> None:
        if isinstance(self.question, CountQuestion) and (self.question.colour or self.question.shape):
            raise ValueError(f"only the total count is asked as a multiple-choice question, not {self.question.text!r}")

    @property
    def named(self) -> str | None:
        """The option text a faithful reader of the caption picks; None when the caption does not say."""
        objects = parse_caption(self.caption)
        if not objects:
            return None
        if isinstance(self.question, CellQuestion):
            return self.question.answer(objects)
        return str(self.question.count(objects))

    @property
    def letter(self) -> str:
        """The letter of the faithful reader's option: the cannot-answer one (last) when the caption does not say."""
        named = self.named
        return self.ask.letters[-1] if named is None else self.ask.letters[self.ask.choices.index(named)]

    @property
    def reply(self) -> str:
        objects = parse_caption(self.caption)
        if not objects:
            return f"\\boxed{{{self.letter}}}"
        read, named = self._read(objects), self.named
        if named is None:
            return f"{read} \\boxed{{{self.letter}}}"
        if isinstance(self.question, CellQuestion):
            return f"{read} \\boxed{{{named}}}"
        return f"{read} {named} is ({self.letter}). \\boxed{{{self.letter}}}"

    def _read(self, objects: Sequence[SceneObject]) -> str:
        """What the reply copies from the caption before it picks: the asked cell's object, or the running count."""
        if isinstance(self.question, CountQuestion):
            return running_count(objects, self.question)
        steps = []
        for obj in objects:
            steps.append(f"{CELL_NAMES[obj.cell]}: {obj.colour} {obj.shape}.")
            if obj.cell == self.question.cell:
                return " ".join(steps)
        return " ".join([*steps, f"{CELL_NAMES[self.question.cell]}: none."])

    def messages(self) -> list[dict]:
        return reasoner_messages(self.caption, self.ask.text)


def random_mcq_question(rng: random.Random, scene: Scene) -> McqQuestion:
    """The total count, or the colour or shape of an object in the scene (the reward asks only about occupied cells)."""
    if rng.random() < _TOTAL_SHARE:
        return CountQuestion()
    obj = rng.choice(scene)
    return CellQuestion(obj.cell, rng.choice(tuple(ATTRIBUTE_OPTIONS)))


def ask_about(rng: random.Random, scene: Scene, question: McqQuestion, cannot_answer: str = CANNOT_ANSWER) -> McqAsk:
    """`question` about `scene` as the reward asks it, with a random shuffle of its options."""
    asked = total_question(scene) if isinstance(question, CountQuestion) else cell_question(question, scene)
    return mcq_asks([asked], 1, rng.randrange(2**31), cannot_answer)[0]


def mcq_example(rng: random.Random, scene: Scene, caption: str) -> McqExample:
    """A random question about `scene`, asked of `caption`."""
    question = random_mcq_question(rng, scene)
    return McqExample(caption, question, ask_about(rng, scene, question))


def answer_only_caption(rng: random.Random, ask: McqAsk) -> str:
    """A caption that names one of the ask's letters or option texts and nothing else."""
    named = rng.choice([*ask.letters, *ask.choices[:-1]])
    return rng.choice(_ANSWER_ONLY_FORMS).format(named)


def random_mcq_example(rng: random.Random, scene: Scene) -> McqExample:
    """A question about `scene` with a complete, partial, empty, cut-off or answer-only caption."""
    example = mcq_example(rng, scene, describe(scene))
    kind = rng.random()
    if kind < 0.4:
        return example
    if kind < 0.7:
        caption = describe(scene, [obj for obj in scene if rng.random() < PARTIAL_KEEP_PROB])
    elif kind < 0.8:
        caption = rng.choice(("", "."))
    elif kind < 0.9:
        caption = truncated(describe(scene), rng)
    else:
        caption = answer_only_caption(rng, example.ask)
    return McqExample(caption, example.question, example.ask)


def mcq_accuracy(
    checkpoint: Path,
    examples: Sequence[McqExample],
    temperature: float = 1.0,
    max_new_tokens: int = ServeConfig().max_new_tokens,
) -> float:
    """The multiple-choice reward the reasoner earns on `examples`: the share of its sampled replies
    that choose the right option (choosing "cannot be answered" is wrong), sampled as the pool does."""
    from serve.hf_reasoner import TransformersReasoner

    reasoner = TransformersReasoner(str(checkpoint))
    right = 0
    for start in range(0, len(examples), 64):
        chunk = examples[start : start + 64]
        replies = reasoner.answer([(e.caption, e.ask.text) for e in chunk], 1, temperature, max_new_tokens)
        right += sum(mcq_correct(reply, example.ask) for (reply,), example in zip(replies, chunk))
    return right / len(examples)
