"""The captioner as a Ray Serve deployment: the first stage of the two-stage inference.

Given an image and a question it writes the query-conditioned caption (the prompt training
optimises) and, asked again, its own tentative step-by-step answer; the reasoner pool reads
both (wire/inference.py). Any captioner checkpoint serves: the base one or a run's trained one.
"""

from __future__ import annotations

import asyncio
import io

import torch
from PIL import Image
from ray import serve

from actors.engine import (
    CaptionEngine,
    CaptionRequest,
    SamplingSettings,
    engine_device,
)
from actors.engine_factory import make_caption_engine
from configs.placement import ray_options
from configs.schema import RolloutConfig
from vlm.caption_prompt import (
    answer_messages,
    encode_caption_prompt,
    encode_image_prompt,
)
from vlm.image_fetch import fetch_image
from vlm.sampling import caption_sampling_spec
from wire.inference import DescribeRequest, Description


@serve.deployment
class CaptionService:
    def __init__(self, config: RolloutConfig, checkpoint: str, seed: int):
        torch.set_num_threads(config.torch_threads)
        self.config, self.checkpoint, self.seed = config, checkpoint, seed
        self._engine: CaptionEngine | None = None
        self._starting = asyncio.Lock()

    async def describe(self, request: DescribeRequest) -> Description:
        engine = await self._ready()
        image = await asyncio.to_thread(fetch_image, Image.open(io.BytesIO(request.image)))
        prompts = [
            encode_caption_prompt(engine.processor, request.question, image),
            encode_image_prompt(engine.processor, answer_messages(request.question), image),
        ]
        spec = caption_sampling_spec(self.config.sampling, engine.processor.tokenizer)
        sampling = SamplingSettings(spec, n=1, max_new_tokens=self.config.sampling.max_new_tokens, seed=request.seed)
        (caption,), (answer,) = await engine.generate(
            [CaptionRequest("caption", prompts[0]), CaptionRequest("tentative-answer", prompts[1])], sampling
        )
        return Description(
            caption=caption.text,
            tentative_answer=answer.text,
            prompt_tokens=sum(len(p.input_ids) for p in prompts),
            completion_tokens=len(caption.token_ids) + len(answer.token_ids),
        )

    async def captions(self, requests: list[DescribeRequest]) -> list[str]:
        """The captions alone of several images, in one engine call, sampled under the first
        request's seed (policy.role=reasoner: the frozen captioner writes the reasoner's prompts)."""
        engine = await self._ready()
        images = await asyncio.gather(
            *(asyncio.to_thread(fetch_image, Image.open(io.BytesIO(r.image))) for r in requests)
        )
        prompts = [encode_caption_prompt(engine.processor, r.question, image) for r, image in zip(requests, images)]
        spec = caption_sampling_spec(self.config.sampling, engine.processor.tokenizer)
        sampling = SamplingSettings(
            spec, n=1, max_new_tokens=self.config.sampling.max_new_tokens, seed=requests[0].seed
        )
        groups = await engine.generate([CaptionRequest(f"caption-{i}", p) for i, p in enumerate(prompts)], sampling)
        return [samples[0].text for samples in groups]

    async def _ready(self) -> CaptionEngine:
        # Built on first use, inside the replica's event loop: vLLM's async engine binds to it.
        async with self._starting:
            if self._engine is None:
                config = self.config
                self._engine = make_caption_engine(
                    config.engine, self.checkpoint, config.vllm, self.seed, engine_device(config.num_gpus)
                )
        return self._engine


def caption_service_app(config: RolloutConfig, checkpoint: str, seed: int):
    """The bound captioner service, one replica placed as a rollout actor is."""
    return CaptionService.options(
        num_replicas=1,
        ray_actor_options=ray_options(config.num_cpus, config.num_gpus, config.placement),
        logging_config={"log_level": "WARNING"},
    ).bind(config, checkpoint, seed)
