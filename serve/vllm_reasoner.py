"""Reasoner engine on vLLM: chat completions, batched by vLLM."""

from __future__ import annotations

from configs.schema import VllmConfig
from serve.completion import (
    Completion,
    CompletionParams,
    Completions,
    Conversation,
    ReasonerEngine,
    TextSink,
    cut_at_stop,
)
from vlm.processor import load_tokenizer
from vlm.reasoner_prompt import encode_chat
from vlm.vllm_setup import engine_args


class VllmReasoner(ReasonerEngine):
    def __init__(self, checkpoint: str, config: VllmConfig, seed: int):
        args = engine_args(checkpoint, config, seed, images_per_prompt=0, async_engine=False)
        # After engine_args: it sets the environment vLLM reads on import.
        from vllm import LLM

        self.tokenizer = load_tokenizer(checkpoint)
        self.llm = LLM(**args)
        self.max_context = int(self.llm.llm_engine.model_config.max_model_len)

    def complete(
        self, conversations: list[Conversation], params: CompletionParams, on_text: TextSink | None = None
    ) -> list[Completions]:
        from vllm import SamplingParams

        # vLLM takes greedy only with n=1; its one answer then stands for all n.
        n = 1 if params.greedy else params.n
        sampling = SamplingParams(
            n=n,
            temperature=params.temperature,
            top_k=0,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            seed=params.seed,
            stop=list(params.stop) or None,
            # vLLM checks stop strings on its own detokenized text. The text we return is decoded
            # here, by the same tokenizer call the transformers backend makes: vLLM's incremental
            # detokenizer holds back a trailing incomplete UTF-8 sequence, so the two backends'
            # texts (and so rewards) could differ for the same tokens.
            detokenize=bool(params.stop),
        )
        encoded = [encode_chat(self.tokenizer, messages) for messages in conversations]
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in encoded], sampling, use_tqdm=False)
        results = []
        for ids, output in zip(encoded, outputs):
            choices = tuple(self._completion(c, params) for c in sorted(output.outputs, key=lambda c: c.index))
            results.append(Completions(choices=choices * (params.n // n), prompt_tokens=len(ids)))
        return results

    def _completion(self, output, params: CompletionParams) -> Completion:
        text, _ = cut_at_stop(self.tokenizer.decode(output.token_ids, skip_special_tokens=True), params.stop)
        return Completion(text, len(output.token_ids), "length" if output.finish_reason == "length" else "stop")

    def close(self) -> None:
        # LLM has no shutdown of its own (vLLM 0.32/0.33); its engine core does.
        self.llm.llm_engine.engine_core.shutdown()
