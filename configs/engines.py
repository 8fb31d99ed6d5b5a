"""The engines' settings: caption sampling, vLLM, and an OpenAI-compatible endpoint (a reasoner
served elsewhere, or a judge). vllm and the endpoint sit in several places of the config."""

from __future__ import annotations

from dataclasses import dataclass

from configs.bounds import Section, bounded

ENGINES = ("transformers", "vllm")
# The reasoner may also be any OpenAI-compatible endpoint served elsewhere.
REASONER_ENGINES = (*ENGINES, "openai")


@dataclass
class SamplingConfig(Section):
    """How captions are sampled. The behaviour logprobs are those of exactly this distribution, and
    the learner computes its logprobs under it too (vlm/sampling.py: temperature, then top-k, then top-p)."""

    section = "rollout.sampling"

    # vLLM samples greedily below 1e-5 (a distribution no learner logprob describes) and
    # refuses above 2: refused here, naming the key, for both engines alike.
    temperature: float = bounded(1.0, ge=1e-5, le=2)
    # Sample from the k most likely tokens only; 0 = off (the full tempered softmax).
    top_k: int = bounded(0, ge=0)
    # Then from the most likely tokens up to cumulative probability top_p (nucleus); 1 = off.
    top_p: float = bounded(1.0, gt=0, le=1)
    max_new_tokens: int = bounded(32, gt=0)


@dataclass
class VllmConfig(Section):
    """vLLM engine settings (used where a role's `engine` is "vllm": rollout.vllm, serve.vllm)."""

    section = "vllm"

    # "float32" makes CPU logprobs match the learner's to ~1e-6; "bfloat16" on GPUs.
    dtype: str = "float32"
    tensor_parallel_size: int = bounded(1, ge=1)
    # KV cache size in bytes; 0 sizes it as a fraction of GPU memory instead (below).
    kv_cache_memory_bytes: int = bounded(64 * 2**20, ge=0)
    gpu_memory_utilization: float = bounded(0.85, gt=0, le=1)
    max_model_len: int = bounded(512, gt=0)
    # torch.compile and CUDA graphs: faster on GPUs; off on CPU, where compiling costs more than it saves.
    compile: bool = False
    # Run a synchronous engine (the reasoner's) in the calling process rather than a subprocess.
    single_process: bool = True


@dataclass
class OpenAIEndpointConfig(Section):
    """An OpenAI-compatible chat endpoint: the reasoner (serve.openai, serve.api.reasoners.<id>)
    or the judge (reward.judge.openai)."""

    section = "openai"

    # e.g. http://127.0.0.1:8000/v1 (another `launch.py serve`, a vLLM server).
    base_url: str = ""
    # The model name the endpoint serves.
    model: str = ""
    # Name of the environment variable holding the API key (never the key itself: configs get
    # shared). Unset variable = no key sent.
    api_key_env: str = "REASONER_API_KEY"
    # Seconds one chat completion may take before the scoring call fails (and is retried).
    timeout_s: float = bounded(120.0, gt=0)
