"""The configured reasoner engine, built inside the process that will run it."""

from __future__ import annotations

import torch

from configs.schema import ServeConfig
from serve.completion import ReasonerEngine


def make_reasoner(config: ServeConfig, checkpoint: str, seed: int) -> ReasonerEngine:
    """The configured reasoner engine. The transformers one samples from torch's global
    generator, which its caller seeds."""
    if config.engine == "vllm":
        from serve.vllm_reasoner import VllmReasoner

        return VllmReasoner(checkpoint, config.vllm, seed)
    if config.engine == "openai":
        from serve.openai_reasoner import OpenAIReasoner

        return OpenAIReasoner(config.openai)
    from serve.hf_reasoner import TransformersReasoner

    device = "cuda" if config.num_gpus > 0 and torch.cuda.is_available() else "cpu"
    return TransformersReasoner(checkpoint, device=device)
