"""What one rollout of the policy is, by policy role: the rollout actor's loop (actors/rollout.py)
is the same for every role; an episode says how a prompt is made, what the pool is asked to
score, and what of the prompt the learner gets.

- `CaptionEpisode` (policy.role=captioner): the captioner describes the image for the question;
  the pool's reasoner answers from each caption, and the answers are graded.
- `AnswerEpisode` (policy.role=reasoner): the frozen captioner (served by the pool) describes the
  image first; the policy reasoner answers the question from that caption, and the pool grades
  the answers. Its prompt is text only: the image stays with the actor.

A third policy role is a third episode, registered in `EPISODES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol

import numpy as np
from PIL import Image

from actors.engine import CaptionEngine, CaptionRequest, CaptionSample, TextPrompt
from records.vqa import VQARecord
from vlm.caption_prompt import encode_caption_prompt
from vlm.reasoner_prompt import encode_reasoner_prompt
from wire.inference import DescribeRequest
from wire.scoring import AnswerScoreRequest, ScoreRequest, ScoreResult


@dataclass(frozen=True)
class Prompt:
    position: int  # in the actor's prompt stream
    record: VQARecord
    request: CaptionRequest | None  # None until the episode has prepared it (`Episode.prepared`)
    image_png: bytes


class EpisodeHost(Protocol):
    """What an episode uses of its rollout actor."""

    engine: CaptionEngine
    pool: Any  # the reasoner pool's Serve handle (set when the actor's loop starts)

    async def call_pool(self, what: str, call: Callable[[], Awaitable]) -> Any:
        """`call()`'s result, retried as rollout.score_attempts says; None if every try failed."""

    async def lose(self, count: int) -> None:
        """`count` admitted prompts that will make no group: counted, their admissions given back."""


class Episode(ABC):
    text_only: ClassVar[bool]  # the policy reads text only (a text model's engine and weights)

    def __init__(self, host: EpisodeHost):
        self.host = host

    @abstractmethod
    def prompt(self, position: int, record: VQARecord, image: Image.Image, image_png: bytes) -> Prompt:
        """The prompt of `record` at `position` of the actor's stream."""

    async def prepared(self, batch: list[Prompt]) -> list[Prompt]:
        """The batch ready to generate from; prompts that cannot be prepared are lost."""
        return batch

    @abstractmethod
    async def score(self, prompt: Prompt, samples: list[CaptionSample]) -> ScoreResult | None:
        """The pool's rewards for the group; None if the pool could not score it."""

    def image_for_learner(self, prompt: Prompt) -> bytes:
        """The image the learner encodes with the prompt (b"" for a text-only policy)."""
        return prompt.image_png


class CaptionEpisode(Episode):
    text_only = False

    def prompt(self, position: int, record: VQARecord, image: Image.Image, image_png: bytes) -> Prompt:
        request = CaptionRequest(
            prompt_id=record.id, prompt=encode_caption_prompt(self.host.engine.processor, record.question, image)
        )
        return Prompt(position=position, record=record, request=request, image_png=image_png)

    async def score(self, prompt: Prompt, samples: list[CaptionSample]) -> ScoreResult | None:
        request = score_request(prompt, samples)
        return await self.host.call_pool(f"scoring group of {prompt.record.id}", lambda: self.host.pool.score(request))


class AnswerEpisode(Episode):
    text_only = True

    def prompt(self, position: int, record: VQARecord, image: Image.Image, image_png: bytes) -> Prompt:
        # Its prompt waits for the frozen captioner's caption (`prepared`).
        return Prompt(position=position, record=record, request=None, image_png=image_png)

    async def prepared(self, batch: list[Prompt]) -> list[Prompt]:
        """Each question with the frozen captioner's caption of its image (seeded by the prompt's
        stream position). Prompts the pool could not caption are lost, as unscored groups are."""
        asked = [DescribeRequest(p.image_png, p.record.question, seed=p.position) for p in batch]
        captions = await self.host.call_pool(
            f"captions for {batch[0].record.id}", lambda: self.host.pool.captions(asked)
        )
        if captions is None:
            await self.host.lose(len(batch))
            return []
        tokenizer = self.host.engine.tokenizer
        return [
            replace(
                p,
                request=CaptionRequest(
                    p.record.id,
                    TextPrompt(
                        np.asarray(encode_reasoner_prompt(tokenizer, caption, p.record.question), dtype=np.int32)
                    ),
                ),
            )
            for p, caption in zip(batch, captions)
        ]

    async def score(self, prompt: Prompt, samples: list[CaptionSample]) -> ScoreResult | None:
        record = prompt.record
        answers = AnswerScoreRequest(
            record.question, record.answer, tuple(s.text for s in samples), tuple(len(s.token_ids) for s in samples)
        )
        results = await self.host.call_pool(
            f"scoring group of {record.id}", lambda: self.host.pool.score_answers([answers])
        )
        return results[0] if results is not None else None

    def image_for_learner(self, prompt: Prompt) -> bytes:
        return b""


EPISODES: dict[str, type[Episode]] = {"captioner": CaptionEpisode, "reasoner": AnswerEpisode}


def score_request(prompt: Prompt, samples: list[CaptionSample]) -> ScoreRequest:
    """What the pool scores a caption group by."""
    return ScoreRequest(
        question=prompt.record.question,
        gold_answer=prompt.record.answer,
        captions=tuple(s.text for s in samples),
        mc_questions=prompt.record.questions,
        caption_tokens=tuple(len(s.token_ids) for s in samples),
        # The group's place in the actor's prompt stream: the seed decides it, so it decides the
        # multiple-choice questions drawn for the group too.
        seed=prompt.position,
        reference=prompt.record.reference,
    )
