"""Reasoner engine on transformers: chat completions, one `generate` call per batch."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
from transformers.generation.streamers import BaseStreamer

from serve.completion import (
    Completion,
    CompletionParams,
    Completions,
    Conversation,
    ReasonerEngine,
    TextSink,
    cut_at_stop,
)
from vlm.reasoner_prompt import encode_chat


class TransformersReasoner(ReasonerEngine):
    def __init__(self, checkpoint: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.tokenizer.padding_side = "left"  # batched generation appends after the prompt
        self.model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype).to(device).eval()
        self.device = device
        self.max_context = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)

    def complete(
        self, conversations: list[Conversation], params: CompletionParams, on_text: TextSink | None = None
    ) -> list[Completions]:
        encoded = [encode_chat(self.tokenizer, messages) for messages in conversations]
        batch = self.tokenizer.pad({"input_ids": encoded}, return_tensors="pt").to(self.device)
        n = 1 if params.greedy else params.n  # greedy: one answer stands for all n
        # Streamed where the text sent is the text returned: one sequence, nothing cut after the fact.
        streams = on_text is not None and len(encoded) == 1 and params.n == 1 and not params.stop
        streamer = _TextStreamer(self.tokenizer, on_text) if streams else None
        # A seeded request draws from its own generator state and leaves the replica's stream as it was.
        seeded = torch.random.fork_rng(devices=[]) if params.seed is not None else nullcontext()
        with torch.no_grad(), seeded:
            if params.seed is not None:
                torch.manual_seed(params.seed)
            sequences = self.model.generate(
                **batch,
                generation_config=self._generation_config(params, n),
                tokenizer=self.tokenizer,
                streamer=streamer,
            )
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


class _TextStreamer(BaseStreamer):
    """Hands on the decoded text as generate() makes tokens: each time, what the whole decode
    adds to what was sent, held back while it ends in an incomplete UTF-8 sequence."""

    def __init__(self, tokenizer, on_text: TextSink):
        self.tokenizer, self.on_text = tokenizer, on_text
        self.ids: list[int] = []
        self.sent = ""
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first puts the prompt
            self.prompt_seen = True
            return
        self.ids += value.reshape(-1).tolist()
        self._send(final=False)

    def end(self) -> None:
        self._send(final=True)

    def _send(self, final: bool) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if (final or not text.endswith("\ufffd")) and len(text) > len(self.sent) and text.startswith(self.sent):
            self.on_text(text[len(self.sent) :])
            self.sent = text
