"""Reasoner engine on transformers: chat completions, one `generate` call per batch."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from serve.completion import (
    Completion,
    CompletionParams,
    Completions,
    Conversation,
    ReasonerEngine,
    cut_at_stop,
)
from serve.reasoner_prompt import encode_chat


class TransformersReasoner(ReasonerEngine):
    def __init__(self, checkpoint: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.tokenizer.padding_side = "left"  # batched generation appends after the prompt
        self.model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype).to(device).eval()
        self.device = device
        self.max_context = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)

    def prompt_tokens(self, conversation: Conversation) -> int | None:
        return len(encode_chat(self.tokenizer, conversation))

    def complete(self, conversations: list[Conversation], params: CompletionParams) -> list[Completions]:
        encoded = [encode_chat(self.tokenizer, messages) for messages in conversations]
        batch = self.tokenizer.pad({"input_ids": encoded}, return_tensors="pt").to(self.device)
        n = 1 if params.greedy else params.n  # greedy: one answer stands for all n
        # A seeded request draws from its own generator state and leaves the replica's stream as it was.
        seeded = torch.random.fork_rng(devices=[]) if params.seed is not None else nullcontext()
        with torch.no_grad(), seeded:
            if params.seed is not None:
                torch.manual_seed(params.seed)
            sequences = self.model.generate(**batch, generation_config=self._generation_config(params, n), tokenizer=self.tokenizer)
        generated = sequences[:, batch["input_ids"].shape[1] :]
        choices = [self._completion(row, params) for row in generated]
        return [
            Completions(choices=tuple(choices[i * n : (i + 1) * n] * (params.n // n)), prompt_tokens=len(ids))
            for i, ids in enumerate(encoded)
        ]

    def _generation_config(self, params: CompletionParams, n: int) -> GenerationConfig:
        return GenerationConfig(
            do_sample=not params.greedy,
            temperature=None if params.greedy else params.temperature,
            top_k=None if params.greedy else 0,
            top_p=None if params.greedy else params.top_p,
            max_new_tokens=params.max_tokens,
            num_return_sequences=n,
            stop_strings=list(params.stop) or None,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
        )

    def _completion(self, row: torch.Tensor, params: CompletionParams) -> Completion:
        ids = row.tolist()
        ends = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        end = next((i for i, t in enumerate(ids) if t in ends), None)
        text, stopped = cut_at_stop(self.tokenizer.decode(ids, skip_special_tokens=True), params.stop)
        if end is not None:  # the end-of-sequence token counts; pads after a stop string do not
            tokens = end + (ids[end] == self.tokenizer.eos_token_id and not stopped)
            return Completion(text, tokens, "stop")
        return Completion(text, len(ids), "stop" if stopped else "length")
