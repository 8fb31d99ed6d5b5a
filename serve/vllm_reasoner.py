"""Reasoner engine on vLLM: k sampled answers per (caption, question) prompt, batched by vLLM."""

from __future__ import annotations

from configs.schema import VllmConfig
from serve.reasoner_prompt import encode_reasoner_prompt
from vlm.processor import load_tokenizer
from vlm.vllm_setup import engine_args


class VllmReasoner:
    def __init__(self, checkpoint: str, config: VllmConfig, seed: int):
        args = engine_args(checkpoint, config, seed, images_per_prompt=0, async_engine=False)
        from vllm import LLM  # after engine_args: it sets the environment vLLM reads on import

        self.tokenizer = load_tokenizer(checkpoint)
        self.llm = LLM(**args)

    def answer(
        self, prompts: list[tuple[str, str]], k: int, temperature: float, max_new_tokens: int
    ) -> list[list[str]]:
        """For each (caption, question), k answers sampled at `temperature` (0: the greedy answer, k times)."""
        from vllm import SamplingParams

        greedy = temperature == 0
        # vLLM takes greedy only with n=1; its one answer then stands for all k.
        # Decoded here, by the same tokenizer call the transformers backend makes: vLLM's own
        # incremental detokenizer holds back a trailing incomplete UTF-8 sequence, so the two
        # backends' texts (and so rewards) could differ for the same tokens.
        params = SamplingParams(
            n=1 if greedy else k, temperature=temperature, top_k=0, top_p=1.0, max_tokens=max_new_tokens, detokenize=False
        )
        requests = [
            {"prompt_token_ids": encode_reasoner_prompt(self.tokenizer, caption, question)} for caption, question in prompts
        ]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        answers = [
            [self.tokenizer.decode(c.token_ids, skip_special_tokens=True) for c in sorted(o.outputs, key=lambda c: c.index)]
            for o in outputs
        ]
        return [a * k for a in answers] if greedy else answers

    def close(self) -> None:
        # LLM has no shutdown of its own (vLLM 0.32/0.33); its engine core does.
        self.llm.llm_engine.engine_core.shutdown()
