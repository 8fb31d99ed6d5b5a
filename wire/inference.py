"""The two-stage inference's first stage, as the reasoner pool asks the captioner service for it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DescribeRequest:
    """Describe `image` (encoded image file bytes, already checked by the caller) for `question`."""

    image: bytes
    question: str
    seed: int | None = None


@dataclass(frozen=True)
class Description:
    """The captioner's query-conditioned caption and its own tentative answer."""

    caption: str
    tentative_answer: str
    prompt_tokens: int  # both prompts, vision tokens included
    completion_tokens: int  # both generations
