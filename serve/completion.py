"""What every reasoner engine offers: chat completions under OpenAI's sampling settings.

The pool's scoring (`answer`: k answers per caption and question) and the live API's chat
completions are one engine call, so the two can never sample differently. Engines: transformers
and vLLM in the replica's process, or any OpenAI-compatible endpoint (`serve.engine=openai`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vlm.reasoner_prompt import encode_chat, reasoner_messages

Conversation = list[dict[str, Any]]  # OpenAI chat messages with text content
# Takes a completion's text piece by piece as it is generated (called from the engine's thread).
TextSink = Callable[[str], None]


@dataclass(frozen=True)
class CompletionParams:
    """OpenAI's sampling settings, as the engines take them."""

    temperature: float = 1.0  # 0: greedy; then the n choices are copies of one answer
    top_p: float = 1.0
    max_tokens: int = 40
    n: int = 1
    stop: tuple[str, ...] = ()  # the text ends before the first of these; not included
    seed: int | None = None  # same seed, same request: the same choices

    def __post_init__(self) -> None:
        if not (self.temperature >= 0 and 0 < self.top_p <= 1 and self.max_tokens >= 1 and self.n >= 1):
            raise ValueError(
                f"completion params: need temperature >= 0, 0 < top_p <= 1, max_tokens >= 1, n >= 1; got {self}"
            )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int  # completion tokens generated, the end-of-sequence token included
    finish_reason: str  # "stop" (end of sequence or a stop string) or "length" (max_tokens)


@dataclass(frozen=True)
class Completions:
    """The n choices for one conversation."""

    choices: tuple[Completion, ...]
    prompt_tokens: int

    @property
    def completion_tokens(self) -> int:
        return sum(c.tokens for c in self.choices)


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """`text` up to (not including) the earliest stop string, and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


class ReasonerEngine(ABC):
    # Tokens a prompt and its completion may take together (0: unknown, the engine's server checks).
    max_context: int = 0
    # The chat tokenizer of an engine that runs its model here (None: a remote engine).
    tokenizer: Any = None

    def prompt_tokens(self, conversation: Conversation) -> int | None:
        """The conversation's prompt length in tokens, where the engine knows its tokenizer."""
        return None if self.tokenizer is None else len(encode_chat(self.tokenizer, conversation))

    @abstractmethod
    def complete(
        self, conversations: list[Conversation], params: CompletionParams, on_text: TextSink | None = None
    ) -> list[Completions]:
        """`params.n` choices for each conversation, in order. Blocking. An engine that can
        stream gives `on_text` the text as it is generated, for one conversation with n = 1 and
        no stop strings; every engine may ignore it (the caller then sends the whole text)."""

    def answer(
        self, prompts: list[tuple[str, str]], k: int, temperature: float, max_new_tokens: int
    ) -> list[list[str]]:
        """For each (caption, question), k answers sampled at `temperature` (0: the greedy answer, k times)."""
        params = CompletionParams(temperature=temperature, max_tokens=max_new_tokens, n=k)
        results = self.complete([reasoner_messages(caption, question) for caption, question in prompts], params)
        return [[choice.text for choice in result.choices] for result in results]

    def close(self) -> None:  # noqa: B027 - not abstract: an engine holding nothing releases nothing
        """Release the engine's resources."""
