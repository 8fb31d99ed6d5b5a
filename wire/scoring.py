"""What a caller sends the reasoner pool to be scored, and what it gets back (Serve handle or HTTP JSON)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScoreRequest:
    """Score one caption group: answer `question` from each caption, grade against `gold_answer`."""

    question: str
    gold_answer: str
    captions: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.captions:
            raise ValueError("ScoreRequest needs at least one caption")


@dataclass(frozen=True)
class ScoreResult:
    rewards: tuple[float, ...]  # per caption: mean correctness of its k answers, in [0, 1]
    answers: tuple[tuple[str, ...], ...]  # per caption: the k reasoner answers
    latency_s: float  # time from the batch's start to its end, on the replica
    # Answers graded wrong unparsed because they would cost too much to grade (serve/grading.py).
    answers_refused: int = 0
    # Captions that were empty (nothing but whitespace): reward 0, no reasoner call.
    empty_captions: int = 0


def score_request_from_json(body: object) -> ScoreRequest:
    """Build a ScoreRequest from an HTTP JSON body, naming the first bad field."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object with question, answer and captions")
    question, answer, captions = body.get("question"), body.get("answer"), body.get("captions")
    if not isinstance(question, str) or not question:
        raise ValueError("field 'question' must be a non-empty string")
    if not isinstance(answer, str):
        raise ValueError("field 'answer' must be a string")
    if not isinstance(captions, list) or not captions or not all(isinstance(c, str) for c in captions):
        raise ValueError("field 'captions' must be a non-empty list of strings")
    return ScoreRequest(question=question, gold_answer=answer, captions=tuple(captions))
