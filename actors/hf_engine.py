"""Caption engine on transformers (`generate`), for CPU or GPU."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoTokenizer,
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
        self.model = self._load(checkpoint, dtype).to(device).eval()
        # generate() fills every setting left unset from the checkpoint's own generation config
        # (Qwen's ships repetition_penalty=1.05): a processor the learner would not reproduce.
        self.model.generation_config = GenerationConfig()
        self.device = device
        self._version = 0
        # generate() and a weight swap must not interleave; both run in worker threads.
        self._lock = threading.Lock()
        torch.manual_seed(seed)

    def _load(self, checkpoint: str, dtype: torch.dtype) -> torch.nn.Module:
        self.processor = load_captioner_processor(checkpoint)
        self.tokenizer = self.processor.tokenizer
        return AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=dtype)

    def _inputs(self, requests: list[CaptionRequest]) -> dict[str, torch.Tensor]:
        return batch_caption_inputs([r.prompt for r in requests], pad_id=self.tokenizer.pad_token_id)

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

    def _generate_blocking(
        self, requests: list[CaptionRequest], sampling: SamplingSettings
    ) -> list[list[CaptionSample]]:
        pad_id = self.tokenizer.pad_token_id
        inputs = {k: v.to(self.device) for k, v in self._inputs(requests).items()}
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


class TransformersTextEngine(TransformersCaptionEngine):
    """The same engine for a text-only policy (policy.role=reasoner): a causal LM, text prompts."""

    def _load(self, checkpoint: str, dtype: torch.dtype) -> torch.nn.Module:
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.processor = self.tokenizer  # what prompts are encoded with
        return AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype)

    def _inputs(self, requests: list[CaptionRequest]) -> dict[str, torch.Tensor]:
        return left_padded([r.prompt.input_ids for r in requests], self.tokenizer.pad_token_id)


def left_padded(prompts: list[np.ndarray], pad_id: int) -> dict[str, torch.Tensor]:
    """input_ids and attention_mask of token id prompts, left-padded: generation appends after each."""
    length = max(len(ids) for ids in prompts)
    input_ids = torch.full((len(prompts), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, length - len(ids) :] = torch.as_tensor(ids, dtype=torch.long)
        attention_mask[row, length - len(ids) :] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


class SpecLogitsProcessor(LogitsProcessor):
    """Applies the sampling spec in generate(): the very function the learner computes its logprobs with."""

    def __init__(self, spec: SamplingSpec):
        self.spec = spec

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return processed_logits(scores, self.spec)
