"""vLLM's Qwen2.5-VL with our image-only processor (see `vlm.vllm_cpu`: only used without torchvision)."""

from __future__ import annotations

from vllm.model_executor.models.qwen2_5_vl import (
    Qwen2_5_VLDummyInputsBuilder,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLMultiModalProcessor,
    Qwen2_5_VLProcessingInfo,
)
from vllm.multimodal import MULTIMODAL_REGISTRY

from vlm.processor import ImageOnlyQwen2_5_VLProcessor


class _ImageOnlyProcessingInfo(Qwen2_5_VLProcessingInfo):
    def get_hf_processor(self, **kwargs: object) -> ImageOnlyQwen2_5_VLProcessor:
        return self.ctx.get_hf_processor(ImageOnlyQwen2_5_VLProcessor, **kwargs)

    def get_supported_mm_limits(self) -> dict[str, int | None]:
        # No video modality: vLLM would otherwise build dummy videos to size its caches.
        return {"image": None}


@MULTIMODAL_REGISTRY.register_processor(
    Qwen2_5_VLMultiModalProcessor, info=_ImageOnlyProcessingInfo, dummy_inputs=Qwen2_5_VLDummyInputsBuilder
)
class ImageOnlyQwen2_5_VL(Qwen2_5_VLForConditionalGeneration):
    """Same model, same weights; only the processor differs."""
