"""What the bundled reasoner learns so that it can also judge (reward.kind=judge), in
serve/judge.py's strict format.

Answers (target answer): the judge reads a question, the reference (gold) answer and a
reasoner's response, copies the response's boxed answer, then scores it: "Score: 10" when it
equals the reference, else "Score: 0". Copying first turns the verdict into comparing two
adjacent tokens, a step a tiny model learns quickly.

Captions (target caption, Perception-R1's check against visual annotations): the judge reads the
reference facts (the scene's full description) and a caption, walks the reference's objects
keeping a running score that starts at 10 and loses MISSING_COST for each object the caption
does not name in its cell, and ends with that score: "top left red circle: 10. bottom right blue
square: 7.\nScore: 7". The same running-tally skill the reasoner counts with.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from serve.grading import boxed_parts
from serve.judge import MAX_SCORE, judge_messages, parse_verdict
from task.reasoner_examples import ReasonerExample, random_example
from task.scenes import CELL_NAMES, SceneObject, describe, parse_caption, random_question

Scene = tuple[SceneObject, ...]
NO_ANSWER = "none"
# What a caption loses for each reference object it leaves out (the score stops at 0).
MISSING_COST = 3


@dataclass(frozen=True)
class JudgeExample:
    question: str
    reference: str  # the gold answer
    response: str  # a reasoner's whole reply

    @property
    def answered(self) -> str:
        """The response's boxed answer, or NO_ANSWER without one."""
        parts = boxed_parts(self.response)
        return parts[-1] if parts else NO_ANSWER

    @property
    def score(self) -> int:
        return MAX_SCORE if self.answered == self.reference else 0

    @property
    def reply(self) -> str:
        return f"Answer: {self.answered}\nScore: {self.score}"

    def messages(self) -> list[dict]:
        return judge_messages(self.question, self.reference, self.response)


@dataclass(frozen=True)
class CaptionJudgeExample:
    question: str
    scene: Scene  # the reference facts are its full description
    caption: str

    @property
    def reference(self) -> str:
        return describe(self.scene)

    def _tally(self) -> list[tuple[SceneObject, int]]:
        named = set(parse_caption(self.caption) or ())  # a caption out of format names nothing
        running, steps = MAX_SCORE, []
        for obj in self.scene:
            running = running if obj in named else max(0, running - MISSING_COST)
            steps.append((obj, running))
        return steps

    @property
    def score(self) -> int:
        return self._tally()[-1][1]

    @property
    def reply(self) -> str:
        walk = " ".join(f"{CELL_NAMES[obj.cell]} {obj.colour} {obj.shape}: {running}." for obj, running in self._tally())
        return f"{walk}\nScore: {self.score}"

    def messages(self) -> list[dict]:
        return judge_messages(self.question, self.reference, self.caption)


def random_caption_judge_example(rng: random.Random, scene: Scene) -> CaptionJudgeExample:
    """A caption of `scene` to judge: complete, partial, empty or cut off (as the reasoner's lessons draw them)."""
    example = random_example(rng, scene)
    return CaptionJudgeExample(example.question.text, scene, example.caption)


def random_judge_example(rng: random.Random, scene: Scene) -> JudgeExample:
    """A response to a question about `scene`: a reply from a complete caption (right) half the
    time, else from a partial, empty or cut-off one (often wrong), or a reply cut off before its box."""
    question = random_question(rng, scene)
    gold = str(question.count(scene))
    caption = describe(scene) if rng.random() < 0.5 else random_example(rng, scene).caption
    response = ReasonerExample(caption, question).reply
    if rng.random() < 0.1:
        response = response[: rng.randrange(1, response.index("\\boxed"))] if "\\boxed" in response[1:] else ""
    return JudgeExample(question.text, gold, response)


def judge_accuracy(checkpoint: Path, examples: Sequence[JudgeExample | CaptionJudgeExample]) -> float:
    """Fraction of examples the reasoner, judging greedily, scores exactly right (out of format = wrong)."""
    from serve.completion import CompletionParams
    from serve.hf_reasoner import TransformersReasoner

    judge = TransformersReasoner(str(checkpoint))
    params = CompletionParams(temperature=0.0, max_tokens=64)
    right = 0
    for start in range(0, len(examples), 64):
        chunk = examples[start : start + 64]
        replies = judge.complete([e.messages() for e in chunk], params)
        right += sum(parse_verdict(r.choices[0].text) == e.score / MAX_SCORE for r, e in zip(replies, chunk))
    return right / len(examples)
