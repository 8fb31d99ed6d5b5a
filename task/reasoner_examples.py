"""The bundled reasoner's lessons: answering a counting question from a caption, and only from it.

The reasoner learns to count what the caption names. It is right exactly when the caption
names every object the question is about (and nothing that is not there), wrong when the
caption left one out, and says "cannot tell" when the caption names nothing (empty, a mark, a
letter or a bare answer) or breaks off.
So its accuracy measures the caption, which is what makes it a reward for the captioner.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from task.scenes import CountQuestion, SceneObject, describe, parse_caption, random_question

Scene = tuple[SceneObject, ...]
CANNOT_TELL = "cannot tell"
# Partial captions name each object with this probability: any subset, in any cells, so the
# reasoner counts whatever a caption names (the captioner's are prefixes, RL's anything).
PARTIAL_KEEP_PROB = 0.5
# Captions that name no object, as a policy gaming its reward writes them. Taught only empty ones,
# the reasoner read a caption of "." as naming some object about one time in five (build format
# 17: an empty caption's reward 0.000, "."'s 0.109 on the verifiable data).
_CONTENT_FREE = (".", "A", "B.", "\\boxed{{{n}}}", "{n}", "The answer is {n}.")


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
        return f"{running_count(objects, self.question)} \\boxed{{{self.question.count(objects)}}}"


def running_count(objects: Sequence[SceneObject], question: CountQuestion) -> str:
    """Each described object copied with the count so far: "red circle: 1. blue square: 1."."""
    return counting_steps(objects, running_totals(objects, question))


def running_totals(objects: Sequence[SceneObject], question: CountQuestion) -> list[int]:
    """The count so far after each object."""
    running, totals = 0, []
    for obj in objects:
        running += question.count([obj])
        totals.append(running)
    return totals


def counting_steps(objects: Sequence[SceneObject], counts: Sequence[int]) -> str:
    """Each object with its count: "red circle: 1. blue square: 1."."""
    return " ".join(f"{obj.colour} {obj.shape}: {count}." for obj, count in zip(objects, counts))


def truncated(caption: str, rng: random.Random) -> str:
    """The caption cut off inside its last object, so it no longer parses."""
    words = caption.split(" ")
    return " ".join(words[: rng.randrange(1, len(words))]).rstrip(".")


def content_free_caption(rng: random.Random) -> str:
    """A caption that names nothing: empty half the time, else a mark, a letter or a bare answer."""
    if rng.random() < 0.5:
        return ""
    return rng.choice(_CONTENT_FREE).format(n=rng.randrange(0, 6))


def random_example(rng: random.Random, scene: Scene, keep_prob: float = PARTIAL_KEEP_PROB) -> ReasonerExample:
    """A question about `scene` with a complete, partial, content-free or cut-off caption of it."""
    question = random_question(rng, scene)
    kind = rng.random()
    if kind < 0.4:
        caption = describe(scene)
    elif kind < 0.8:
        caption = describe(scene, [obj for obj in scene if rng.random() < keep_prob])
    elif kind < 0.9:
        caption = content_free_caption(rng)
    else:
        caption = truncated(describe(scene), rng)
    return ReasonerExample(caption, question)
