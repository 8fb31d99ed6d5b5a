"""What the bundled captioner learns so that it can also answer for itself: RACRO's direct mode,
and the tentative answer the two-stage inference hands the reasoner.

Asked `answer_messages(question)` about an image, it walks every object it sees with the
reasoner's running count and boxes the total, "red circle: 1. blue square: 1. \\boxed{1}": the
same steps the reasoner takes over a caption, read from the image instead. A question with its
options listed (the benchmarks' multiple choice) gets the same reply: the boxed count is graded as
the option whose text it is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from task.reasoner_examples import ReasonerExample
from task.scenes import CountQuestion, SceneObject, describe, random_question
from wire.scoring import multiple_choice_text

Scene = tuple[SceneObject, ...]
# Half the direct questions list options, as half of a MathVista-style benchmark's do.
_LISTED_SHARE = 0.5
_OPTIONS = 4
# Counts an option may show: a bundled scene holds at most 4 objects, a benchmark's options go further.
_OPTION_COUNTS = range(10)


@dataclass(frozen=True)
class DirectAnswer:
    """A question about a scene, as the captioner is asked it, and the reply it learns."""

    scene: Scene
    question: CountQuestion
    text: str  # the question as asked: plain, or with its options listed

    @property
    def answer(self) -> str:
        return str(self.question.count(self.scene))

    @property
    def reply(self) -> str:
        """The running count over every object of the scene, then the total boxed."""
        return ReasonerExample(describe(self.scene), self.question).reply


def listed_question(rng: random.Random, question: CountQuestion, answer: str) -> str:
    """`question` with four counts listed as lettered options, `answer` among them, in random order."""
    others = rng.sample([str(n) for n in _OPTION_COUNTS if str(n) != answer], _OPTIONS - 1)
    choices = [answer, *others]
    rng.shuffle(choices)
    return multiple_choice_text(question.text, "ABCD"[:_OPTIONS], choices)


def caption_question(rng: random.Random, scene: Scene) -> str:
    """A dataset question about `scene` for the captioner to describe the image for, with its options
    listed as often as a direct question's: trained on plain questions only, the captioner took a
    listed question for a call to answer and wrote boxed counts into its captions."""
    question = random_question(rng, scene, anchored=1.0)
    if rng.random() < _LISTED_SHARE:
        return listed_question(rng, question, str(question.count(scene)))
    return question.text


def random_direct_answer(rng: random.Random, scene: Scene) -> DirectAnswer:
    """A counting question about `scene` (about something in it or not), plain or with options."""
    question = random_question(rng, scene)
    answer = str(question.count(scene))
    text = listed_question(rng, question, answer) if rng.random() < _LISTED_SHARE else question.text
    return DirectAnswer(scene, question, text)
