"""Caption engine on vLLM's async engine: continuous batching, n samples per prompt, in-place weight updates."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np

from actors.engine import CaptionEngine, CaptionRequest, CaptionSample, SamplingSettings
from actors.weight_update import WeightUpdate, encode_weight_update
from configs.schema import VllmConfig
from vlm.caption_prompt import suppressed_caption_token_ids
from vlm.processor import load_captioner_processor
from vlm.vllm_setup import engine_args


class VllmCaptionEngine(CaptionEngine):
    def __init__(self, checkpoint: str, config: VllmConfig, seed: int = 0):
        args = engine_args(checkpoint, config, seed, images_per_prompt=1, async_engine=True)
        from vllm.v1.engine.async_llm import AsyncLLM  # after engine_args: it sets vLLM's environment

        self.processor = load_captioner_processor(checkpoint)
        self.tokenizer = self.processor.tokenizer
        self._engine = AsyncLLM.from_engine_args(args)
        vocab = len(self.tokenizer)
        suppressed = set(suppressed_caption_token_ids(self.tokenizer))
        # Masked out before sampling, as the transformers engine and the learner do.
        self._allowed_ids = [i for i in range(vocab) if i not in suppressed]
        self._version = 0
        self._request_ids = itertools.count()

    @property
    def policy_version(self) -> int:
        return self._version

    async def generate(self, requests: list[CaptionRequest], sampling: SamplingSettings) -> list[list[CaptionSample]]:
        return list(await asyncio.gather(*(self._generate_one(r, i, sampling) for i, r in enumerate(requests))))

    async def _generate_one(self, request: CaptionRequest, position: int, sampling: SamplingSettings) -> list[CaptionSample]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        if request.prompt.image is None:
            raise ValueError(f"prompt {request.prompt_id!r} carries no image; the vLLM engine processes images itself")
        number = next(self._request_ids)
        params = SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            max_tokens=sampling.max_new_tokens,
            logprobs=0,  # just the sampled token's, under the processed (sampled-from) distribution
            allowed_token_ids=self._allowed_ids,
            # Seeded only when asked (the call's seed plus the request's position): on the CPU
            # build (0.32) a seeded request whose prefill is split across engine steps kills the
            # engine ("CPU Generator does not use offset"). Unseeded requests draw from the
            # engine's generator, itself seeded from `seed`.
            seed=None if sampling.seed is None else sampling.seed + position,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        prompt = {"prompt_token_ids": request.prompt.unexpanded_ids(), "multi_modal_data": {"image": request.prompt.image}}
        # Tokens generated across an in-place update mix versions; the sample carries the oldest.
        version = self._version
        final = None
        async for output in self._engine.generate(prompt, params, request_id=f"{request.prompt_id}-{number}"):
            final = output
        return [self._sample(completion, version) for completion in sorted(final.outputs, key=lambda c: c.index)]

    def _sample(self, completion, version: int) -> CaptionSample:
        ids = np.asarray(completion.token_ids, dtype=np.int32)
        logprobs = np.asarray(
            [position[token].logprob for position, token in zip(completion.logprobs, completion.token_ids)],
            dtype=np.float32,
        )
        return CaptionSample(
            token_ids=ids,
            logprobs=logprobs,
            text=self.tokenizer.decode(ids, skip_special_tokens=True),
            policy_version=version,
        )

    async def update_weights(self, update: WeightUpdate) -> None:
        """Pause in place (requests in flight keep their state), reload layer-wise, reset caches, resume."""
        frames = [bytes(frame) for frame in encode_weight_update(update.version, update.tensors)]
        await self._engine.pause_generation(mode="keep", clear_cache=False)
        try:
            await self._engine.collective_rpc("reload_weight_frames", args=(frames,))
            # Cached prefixes and image embeddings were computed by the old weights.
            await self._engine.reset_prefix_cache()
            await self._engine.reset_encoder_cache()
            self._version = update.version
        finally:
            await self._engine.resume_generation()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            # Dropped now, while the interpreter is whole: AsyncLLM.__del__ shuts down again.
            self._engine = None
