"""The policy engine of a kind: transformers or vLLM, for the captioner or a text model.

Apart from `actors.engine` (the interface the implementations import), so that the interface
and its implementations never import each other.
"""

from __future__ import annotations

from actors.engine import CaptionEngine
from configs.schema import VllmConfig

# The vLLM weight-transfer backend that takes each weight sync backend's updates.
VLLM_WEIGHT_TRANSFER = {"zmq": "frames", "gloo": "gloo", "nccl": "nccl"}


def make_caption_engine(
    kind: str,
    checkpoint: str,
    vllm: VllmConfig,
    seed: int,
    device: str = "cpu",
    weight_sync: str = "zmq",
    text_only: bool = False,
) -> CaptionEngine:
    """The policy engine of `kind` ("transformers" or "vllm"), taking updates from the weight
    sync backend `weight_sync`; `text_only` for a text model (the reasoner as the policy). Call it
    inside the event loop that will drive the engine: vLLM's async engine binds its output
    handler to the running loop."""
    if kind == "vllm":
        from actors.vllm_engine import VllmCaptionEngine

        return VllmCaptionEngine(
            checkpoint, vllm, seed=seed, weight_transfer=VLLM_WEIGHT_TRANSFER[weight_sync], text_only=text_only
        )
    if weight_sync != "zmq":
        raise ValueError(f"weight sync {weight_sync!r} broadcasts into vLLM engines; the {kind} engine takes 'zmq'")
    from actors.hf_engine import TransformersCaptionEngine, TransformersTextEngine

    engine = TransformersTextEngine if text_only else TransformersCaptionEngine
    return engine(checkpoint, device=device, seed=seed)
