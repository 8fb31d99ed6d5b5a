"""Reasoner engine on transformers: k sampled answers per (caption, question) prompt."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from serve.reasoner_prompt import encode_reasoner_prompt


class TransformersReasoner:
    def __init__(self, checkpoint: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.tokenizer.padding_side = "left"  # batched generation appends after the prompt
        self.model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype).to(device).eval()
        self.device = device

    def answer(
        self, prompts: list[tuple[str, str]], k: int, temperature: float, max_new_tokens: int
    ) -> list[list[str]]:
        """For each (caption, question), k answers sampled at `temperature` (0: the greedy answer, k times)."""
        encoded = [encode_reasoner_prompt(self.tokenizer, caption, question) for caption, question in prompts]
        batch = self.tokenizer.pad({"input_ids": encoded}, return_tensors="pt").to(self.device)
        greedy = temperature == 0
        config = GenerationConfig(
            do_sample=not greedy,
            temperature=None if greedy else temperature,
            top_k=None if greedy else 0,
            top_p=None if greedy else 1.0,
            max_new_tokens=max_new_tokens,
            num_return_sequences=1 if greedy else k,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        with torch.no_grad():
            sequences = self.model.generate(**batch, generation_config=config)
        texts = self.tokenizer.batch_decode(sequences[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        if greedy:
            return [[text] * k for text in texts]
        return [texts[i * k : (i + 1) * k] for i in range(len(prompts))]
