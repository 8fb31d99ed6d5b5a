"""Caption engine on vLLM's async engine: continuous batching, n samples per prompt, in-place weight updates."""

from __future__ import annotations

import asyncio
import itertools
import logging
from contextlib import asynccontextmanager

import numpy as np

from actors.engine import CaptionEngine, CaptionRequest, CaptionSample, SamplingSettings, TextPrompt
from actors.shared_update import shared_update
from configs.schema import VllmConfig
from vlm.processor import load_captioner_processor
from vlm.sampling import SamplingSpec
from vlm.vllm_setup import engine_args
from wire.broadcast import Round
from wire.weights import WeightUpdate, encode_weight_update

log = logging.getLogger(__name__)
# vLLM's label for the weights an engine started with.
_INITIAL_WEIGHTS = "default"


class VllmCaptionEngine(CaptionEngine):
    updates_in_flight = True

    def __init__(
        self,
        checkpoint: str,
        config: VllmConfig,
        seed: int = 0,
        weight_transfer: str = "frames",
        text_only: bool = False,
    ):
        """`weight_transfer`: how updates arrive, a backend of vLLM's weight-transfer API ("frames"
        for `update_weights`, "gloo" or "nccl" for the broadcast methods; `actors.vllm_weights`);
        `text_only`: a text model's engine (the reasoner as the policy), prompts without images."""
        images = 0 if text_only else 1
        args = engine_args(
            checkpoint, config, seed, images_per_prompt=images, async_engine=True, weight_transfer=weight_transfer
        )
        from vllm.v1.engine.async_llm import AsyncLLM  # after engine_args: it sets vLLM's environment

        if text_only:
            from transformers import AutoTokenizer

            self.processor = self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        else:
            self.processor = load_captioner_processor(checkpoint)
            self.tokenizer = self.processor.tokenizer
        self._engine = AsyncLLM.from_engine_args(args)
        # The model's vocabulary (its logits' width), which may exceed the tokenizer's: ids vLLM
        # is not told to allow are masked, and the learner masks only the suppressed ones.
        self._vocab_size = self._engine.model_config.get_vocab_size()
        self._allowed_ids: dict[tuple[int, ...], list[int] | None] = {}  # by suppressed ids
        self._version = 0
        self._request_ids = itertools.count()
        self.workers = config.tensor_parallel_size  # its ranks in a weight broadcast group
        # Updates reach the engine's process through shared memory until it has no room.
        self.shared_memory = True

    @property
    def policy_version(self) -> int:
        return self._version

    async def generate(self, requests: list[CaptionRequest], sampling: SamplingSettings) -> list[list[CaptionSample]]:
        return list(await asyncio.gather(*(self._generate_one(r, i, sampling) for i, r in enumerate(requests))))

    async def _generate_one(
        self, request: CaptionRequest, position: int, sampling: SamplingSettings
    ) -> list[CaptionSample]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        prompt = _engine_prompt(request)
        number = next(self._request_ids)
        spec = sampling.spec
        params = SamplingParams(
            n=sampling.n,
            # vLLM's sampler applies these as `vlm.sampling.processed_logits` does (see there); its
            # top_k=0 is off, as ours is.
            temperature=spec.temperature,
            top_k=spec.top_k,
            top_p=spec.top_p,
            max_tokens=sampling.max_new_tokens,
            logprobs=0,  # just the sampled token's, under the processed (sampled-from) distribution
            allowed_token_ids=self._allowed(spec),
            # Seeded only when asked (the call's seed plus the request's position): on the CPU
            # build (0.32) a seeded request whose prefill is split across engine steps kills the
            # engine ("CPU Generator does not use offset"). Unseeded requests draw from the
            # engine's generator, itself seeded from `seed`.
            seed=None if sampling.seed is None else sampling.seed + position,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        submitted_under = self._version
        final = None
        async for output in self._engine.generate(prompt, params, request_id=f"{request.prompt_id}-{number}"):
            final = output
        return [
            self._sample(completion, submitted_under) for completion in sorted(final.outputs, key=lambda c: c.index)
        ]

    def _allowed(self, spec: SamplingSpec) -> list[int] | None:
        """Every id but the suppressed ones (vLLM masks the rest to -inf before sampling); built once
        per suppressed set."""
        if spec.suppressed_token_ids not in self._allowed_ids:
            suppressed = set(spec.suppressed_token_ids)
            allowed = [i for i in range(self._vocab_size) if i not in suppressed]
            self._allowed_ids[spec.suppressed_token_ids] = allowed if suppressed else None
        return self._allowed_ids[spec.suppressed_token_ids]

    def _sample(self, completion, submitted_under: int) -> CaptionSample:
        ids = np.asarray(completion.token_ids, dtype=np.int32)
        logprobs = np.asarray(
            [position[token].logprob for position, token in zip(completion.logprobs, completion.token_ids)],
            dtype=np.float32,
        )
        return CaptionSample(
            token_ids=ids,
            logprobs=logprobs,
            text=self.tokenizer.decode(ids, skip_special_tokens=True),
            token_versions=_token_versions(completion.weight_versions, len(ids), submitted_under),
        )

    async def update_weights(self, update: WeightUpdate) -> None:
        """Load a published update in place (the "frames" backend): through shared memory, or,
        once that has had no room, inline in vLLM's RPC (copied into its message and out again)."""
        async with self._swapping(update.version):
            if self.shared_memory:
                try:
                    with shared_update(update) as shared:
                        return await self._load({"path": shared.path, "header": shared.header})
                except OSError as err:
                    log.warning(
                        "weight updates go inline through vLLM's RPC from now on: no room in shared memory (%s)", err
                    )
                    self.shared_memory = False
            await self._load({"frames": list(encode_weight_update(update))})

    async def _load(self, info: dict) -> None:
        from vllm.distributed.weight_transfer.base import WeightTransferUpdateRequest

        await self._engine.update_weights(WeightTransferUpdateRequest(update_info=info))

    async def join_weight_broadcast(self, init_info: dict) -> None:
        """Join the learner's broadcast group (blocks until every member has joined)."""
        from vllm.distributed.weight_transfer.base import WeightTransferInitRequest

        await self._engine.init_weight_transfer_engine(WeightTransferInitRequest(init_info=init_info))

    async def receive_weight_broadcast(self, round_: Round) -> None:
        """Receive policy `round_.version` as the learner broadcasts it, tensor by tensor."""
        from vllm.distributed.weight_transfer.base import WeightTransferUpdateRequest

        async with self._swapping(round_.version):
            await self._engine.update_weights(WeightTransferUpdateRequest(update_info=round_.update_info()))

    @asynccontextmanager
    async def _swapping(self, version: int):
        """Around a weight swap: requests in flight are paused in place, then go on under the new
        weights, their tokens tagged with `version` from there on."""
        await self._engine.pause_generation(mode="keep", clear_cache=False)
        try:
            await self._engine.start_weight_update()
            yield
            await self._engine.finish_weight_update(weight_version=str(version))
            # Image embeddings and KV computed by the old weights must go. Running requests are
            # preempted so that their KV is recomputed too: their next tokens are then sampled from
            # the new policy exactly, not from new weights over an old cache.
            await self._engine.reset_encoder_cache()
            if not await self._engine.reset_prefix_cache(reset_running_requests=True):
                raise RuntimeError("vLLM could not reset its prefix cache after a weight update")
            self._version = version
        finally:
            await self._engine.resume_generation()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            # Dropped now, while the interpreter is whole: AsyncLLM.__del__ shuts down again.
            self._engine = None


def _engine_prompt(request: CaptionRequest) -> dict:
    """vLLM's prompt: token ids, and the image for an image prompt (vLLM processes it itself)."""
    if isinstance(request.prompt, TextPrompt):
        return {"prompt_token_ids": request.prompt.input_ids.tolist()}
    if request.prompt.image is None:
        raise ValueError(f"prompt {request.prompt_id!r} carries no image; the vLLM engine processes images itself")
    return {"prompt_token_ids": request.prompt.unexpanded_ids(), "multi_modal_data": {"image": request.prompt.image}}


def _token_versions(spans, length: int, submitted_under: int) -> np.ndarray:
    """Per-token policy versions from vLLM's weight-version spans over the output tokens; where
    vLLM reports none, every token gets the version the request was submitted under."""
    versions = np.full(length, submitted_under, dtype=np.int32)
    for span in spans or ():
        versions[span.start : span.end] = 0 if span.version == _INITIAL_WEIGHTS else int(span.version)
    return versions
