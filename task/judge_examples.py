"""What the bundled reasoner learns so that it can also judge (reward.kind=judge, target answer).

The judge reads a question, the reference (gold) answer and a reasoner's response, copies the
response's boxed answer, then scores it: "Score: 10" when it equals the reference, else
"Score: 0" (serve/judge.py's strict format). Copying first turns the verdict into comparing two
adjacent tokens, a step a tiny model learns quickly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from serve.grading import boxed_parts
from serve.judge import MAX_SCORE, judge_messages, parse_verdict
from task.reasoner_examples import ReasonerExample, random_example
from task.scenes import SceneObject, describe, random_question

Scene = tuple[SceneObject, ...]
NO_ANSWER = "none"


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


def judge_accuracy(checkpoint: Path, examples: Sequence[JudgeExample]) -> float:
    """Fraction of examples the reasoner, judging greedily, scores exactly right (out of format = wrong)."""
    from serve.completion import CompletionParams
    from serve.hf_reasoner import TransformersReasoner

    judge = TransformersReasoner(str(checkpoint))
    params = CompletionParams(temperature=0.0, max_tokens=16)
    right = 0
    for start in range(0, len(examples), 64):
        chunk = examples[start : start + 64]
        replies = judge.complete([e.messages() for e in chunk], params)
        right += sum(parse_verdict(r.choices[0].text) == e.score / MAX_SCORE for r, e in zip(replies, chunk))
    return right / len(examples)
