"""Caption engine on transformers (`generate`), for CPU or GPU."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import torch
from transformers import (
    AutoModelForImageTextToText,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
)

from actors.engine import CaptionEngine, CaptionRequest, CaptionSample, SamplingSettings
from actors.weight_tensors import named_tensors
from vlm.caption_prompt import batch_caption_inputs
from vlm.processor import load_captioner_processor
from vlm.sampling import SamplingSpec, processed_logits
from wire.weights import WeightUpdate


class TransformersCaptionEngine(CaptionEngine):
    def __init__(self, checkpoint: str, device: str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0):
        self.processor = load_captioner_processor(checkpoint)
        self.tokenizer = self.processor.tokenizer
        self.model = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=dtype).to(device).eval()
        # generate() fills every setting left unset from the checkpoint's own generation config
        # (Qwen's ships repetition_penalty=1.05): a processor the learner would not reproduce.
        self.model.generation_config = GenerationConfig()
        self.device = device
        self._version = 0
        # generate() and a weight swap must not interleave; both run in worker threads.
        self._lock = threading.Lock()
        torch.manual_seed(seed)

    @property
    def policy_version(self) -> int:
        return self._version

    async def generate(self, requests: list[CaptionRequest], sampling: SamplingSettings) -> list[list[CaptionSample]]:
        return await asyncio.to_thread(self._generate_blocking, requests, sampling)

    async def update_weights(self, update: WeightUpdate) -> None:
        await asyncio.to_thread(self._load_blocking, update)

    def _load_blocking(self, update: WeightUpdate) -> None:
        params = dict(self.model.named_parameters())
        tensors = named_tensors(update)
        unknown = sorted({name for name, _ in tensors} - set(params))
        if unknown:
            raise ValueError(f"weight update v{update.version} names parameters this model lacks: {unknown[:5]}")
        with self._lock, torch.no_grad():
            for name, tensor in tensors:
                params[name].copy_(tensor.to(params[name].device, params[name].dtype))
            self._version = update.version

    def _generate_blocking(self, requests: list[CaptionRequest], sampling: SamplingSettings) -> list[list[CaptionSample]]:
        pad_id = self.tokenizer.pad_token_id
        inputs = batch_caption_inputs([r.prompt for r in requests], pad_id=pad_id)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        config = GenerationConfig(
            do_sample=True,
            # The spec's processor below does all of the sampling's processing. These neutral values
            # must be explicit: left unset, generate() adds a top_k=50 warper of its own.
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=sampling.max_new_tokens,
            num_return_sequences=sampling.n,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=pad_id,
            output_scores=True,
            return_dict_in_generate=True,
        )
        with self._lock, torch.no_grad():
            version = self._version
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            processors = LogitsProcessorList([SpecLogitsProcessor(sampling.spec)])
            out = self.model.generate(**inputs, generation_config=config, logits_processor=processors)
        prompt_len = inputs["input_ids"].shape[1]
        new_tokens = out.sequences[:, prompt_len:]  # [R x n, T]
        # `scores` are what the processors returned, the logits sampled from: the spec's processed logits.
        logprobs = torch.stack(out.scores, dim=1).float().log_softmax(-1)  # [R x n, T, V]
        token_logp = logprobs.gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
        samples = [self._sample(new_tokens[i], token_logp[i], version) for i in range(new_tokens.shape[0])]
        return [samples[i * sampling.n : (i + 1) * sampling.n] for i in range(len(requests))]

    def _sample(self, tokens: torch.Tensor, logp: torch.Tensor, version: int) -> CaptionSample:
        eos = (tokens == self.tokenizer.eos_token_id).nonzero()
        length = int(eos[0, 0]) + 1 if len(eos) else tokens.shape[0]
        ids = tokens[:length].cpu().numpy().astype(np.int32)
        return CaptionSample(
            token_ids=ids,
            logprobs=logp[:length].cpu().numpy().astype(np.float32),
            text=self.tokenizer.decode(ids, skip_special_tokens=True),
            token_versions=np.full(length, version, dtype=np.int32),
        )


class SpecLogitsProcessor(LogitsProcessor):
    """Applies the sampling spec in generate(): the very function the learner computes its logprobs with."""

    def __init__(self, spec: SamplingSpec):
        self.spec = spec

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return processed_logits(scores, self.spec)
