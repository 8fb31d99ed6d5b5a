"""The caption engine interface the rollout loop talks to.

Shaped after what a vLLM engine offers, so that one fits without changing the loop: asynchronous
generation of n samples per prompt, the behaviour logprob of every sampled token (under the
distribution actually sampled from: after temperature, top-k and top-p), a policy version on
every sample, and in-place weight updates tagged with their version.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from actors.weight_update import WeightUpdate
from vlm.caption_prompt import CaptionPrompt


@dataclass(frozen=True)
class SamplingSettings:
    n: int
    temperature: float
    top_k: int
    top_p: float
    max_new_tokens: int
    # Same seed, same weights, same requests: the same samples (a fixed seed per call; None draws fresh).
    seed: int | None = None


@dataclass(frozen=True)
class CaptionRequest:
    prompt_id: str
    prompt: CaptionPrompt


@dataclass(frozen=True)
class CaptionSample:
    token_ids: np.ndarray  # int32 [T], ends with EOS unless cut at max_new_tokens
    logprobs: np.ndarray  # float32 [T], behaviour logprob of each sampled token
    text: str
    policy_version: int  # the (oldest) version whose weights produced these tokens


class CaptionEngine(ABC):
    @property
    @abstractmethod
    def policy_version(self) -> int: ...

    @abstractmethod
    async def generate(self, requests: list[CaptionRequest], sampling: SamplingSettings) -> list[list[CaptionSample]]:
        """`sampling.n` samples for each request, in request order."""

    @abstractmethod
    async def update_weights(self, update: WeightUpdate) -> None:
        """Swap the weights in place; what is generated afterwards carries `update.version`."""

    def close(self) -> None:
        """Release the engine's resources."""
