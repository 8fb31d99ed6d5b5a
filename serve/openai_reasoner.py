"""Reasoner engine on any OpenAI-compatible endpoint (serve.engine=openai): a reasoner served
elsewhere (a vLLM server, another `launch.py serve`) scores training's captions. The pool's
replicas then only batch, call and grade."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from openai import OpenAI

from configs.schema import OpenAIEndpointConfig
from serve.completion import (
    Completion,
    CompletionParams,
    Completions,
    Conversation,
    ReasonerEngine,
    TextSink,
)

# Conversations of one batch sent at once: the endpoint batches them as it sees fit.
_CONCURRENT_CALLS = 16


class OpenAIReasoner(ReasonerEngine):
    def __init__(self, config: OpenAIEndpointConfig):
        # The key comes from the environment only; a server that asks for none takes any string.
        key = os.environ.get(config.api_key_env) or "unused"
        self.client = OpenAI(base_url=config.base_url, api_key=key, timeout=config.timeout_s, max_retries=0)
        self.model = config.model
        self.calls = ThreadPoolExecutor(_CONCURRENT_CALLS, thread_name_prefix="openai-reasoner")

    def complete(
        self, conversations: list[Conversation], params: CompletionParams, on_text: TextSink | None = None
    ) -> list[Completions]:
        return list(self.calls.map(lambda messages: self._one(messages, params), conversations))

    def _one(self, messages: Conversation, params: CompletionParams) -> Completions:
        response = self.client.chat.completions.create(
            model=self.model,
            messages=messages,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            n=params.n,
            stop=list(params.stop) or None,
            seed=params.seed,
        )
        usage = response.usage
        choices = sorted(response.choices, key=lambda c: c.index)
        # Usage counts the choices' tokens together: each choice is given an equal share.
        per_choice = usage.completion_tokens // max(len(choices), 1) if usage else 0
        return Completions(
            choices=tuple(Completion(c.message.content or "", per_choice, c.finish_reason or "stop") for c in choices),
            prompt_tokens=usage.prompt_tokens if usage else 0,
        )

    def close(self) -> None:
        self.calls.shutdown(wait=False)
        self.client.close()
