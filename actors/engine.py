"""The caption engine interface the rollout loop talks to.

Shaped after what a vLLM engine offers, so that one fits without changing the loop: asynchronous
generation of n samples per prompt, the behaviour logprob of every sampled token (under the
distribution actually sampled from: after temperature, top-k and top-p), a policy version on
every sample, and in-place weight updates tagged with their version.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from vlm.caption_prompt import CaptionPrompt
from vlm.sampling import SamplingSpec
from wire.weights import WeightUpdate


@dataclass(frozen=True)
class SamplingSettings:
    # The distribution each token is drawn from; the learner computes its logprobs under the same spec.
    spec: SamplingSpec
    # Samples per request.
    n: int
    max_new_tokens: int
    # Same seed, same weights, same requests: the same samples (a fixed seed per call; None draws fresh).
    seed: int | None = None


@dataclass(frozen=True)
class TextPrompt:
    """A text-only policy's prompt (policy.role=reasoner): chat-formatted token ids."""

    input_ids: np.ndarray  # int32 [L]


@dataclass(frozen=True)
class CaptionRequest:
    """One prompt for the policy: an image prompt for the captioner, a text one for the reasoner."""

    prompt_id: str
    prompt: CaptionPrompt | TextPrompt


@dataclass(frozen=True)
class CaptionSample:
    token_ids: np.ndarray  # int32 [T], ends with EOS unless cut at max_new_tokens
    logprobs: np.ndarray  # float32 [T], behaviour logprob of each sampled token
    text: str
    # int32 [T]: the policy version whose weights sampled each token. An engine that swaps weights
    # while a request is in flight (vLLM) yields samples whose later tokens carry a newer version.
    token_versions: np.ndarray

    @property
    def policy_version(self) -> int:
        """The oldest version among the tokens: what staleness is measured from."""
        return int(self.token_versions.min()) if len(self.token_versions) else 0


class CaptionEngine(ABC):
    # True where `update_weights` may run while `generate` calls are in flight (their requests
    # are paused in place and go on under the new weights); otherwise the caller swaps weights
    # only between `generate` calls.
    updates_in_flight: bool = False

    @property
    @abstractmethod
    def policy_version(self) -> int: ...

    @abstractmethod
    async def generate(self, requests: list[CaptionRequest], sampling: SamplingSettings) -> list[list[CaptionSample]]:
        """`sampling.n` samples for each request, in request order."""

    @abstractmethod
    async def update_weights(self, update: WeightUpdate) -> None:
        """Swap the weights in place; what is generated afterwards carries `update.version`."""

    def close(self) -> None:  # noqa: B027 - not abstract: an engine holding nothing releases nothing
        """Release the engine's resources."""


def engine_device(num_gpus: float) -> str:
    """Where a role's engine runs: its GPU when the role was placed with one, else the CPU."""
    import torch

    return "cuda" if num_gpus > 0 and torch.cuda.is_available() else "cpu"


def close_event_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close a loop that drove engines (closed already): vLLM's async engine leaves its output
    handler waiting on the loop, which must be ended before the loop is closed."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:  # gather() of nothing would look for a current loop, and there may be none
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()
