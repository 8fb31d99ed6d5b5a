"""How every vLLM engine of ours is started: one place for engine arguments and process settings."""

from __future__ import annotations

import os

from configs.schema import VllmConfig

# The sampled token's logprob under the distribution it was sampled from (after temperature,
# top-k, top-p and the masked tokens): the behaviour logprob GRPO's ratio needs.
LOGPROBS_MODE = "processed_logprobs"


def _set_process_defaults(config: VllmConfig) -> None:
    """Environment vLLM reads at import; set only where the user has not."""
    # vLLM logs every engine start and request batch at INFO, drowning the run's own progress.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    if config.single_process:
        # The synchronous engine then runs in this process: no engine subprocess per replica.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    if not config.compile:
        os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")


def engine_args(
    checkpoint: str,
    config: VllmConfig,
    seed: int,
    images_per_prompt: int,
    async_engine: bool,
    weight_transfer: str | None = None,
):
    """vLLM engine arguments for `checkpoint`: `AsyncEngineArgs` for the async engine, else `LLM`
    kwargs. `weight_transfer` names the backend of vLLM's weight-transfer API updates arrive by."""
    _set_process_defaults(config)
    kwargs = dict(
        model=checkpoint,
        dtype=config.dtype,
        seed=seed,
        max_model_len=config.max_model_len,
        tensor_parallel_size=config.tensor_parallel_size,
        enforce_eager=not config.compile,
        logprobs_mode=LOGPROBS_MODE,
    )
    if weight_transfer is not None:
        from vllm.config import WeightTransferConfig

        kwargs["weight_transfer_config"] = WeightTransferConfig(backend=weight_transfer)
    if config.kv_cache_memory_bytes:
        kwargs["kv_cache_memory_bytes"] = config.kv_cache_memory_bytes
    else:
        kwargs["gpu_memory_utilization"] = config.gpu_memory_utilization
    if images_per_prompt:
        kwargs["limit_mm_per_prompt"] = {"image": images_per_prompt}
    if not async_engine:
        return kwargs
    from vllm.engine.arg_utils import AsyncEngineArgs

    return AsyncEngineArgs(**kwargs)
