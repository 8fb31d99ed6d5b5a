"""vLLM on machines without torchvision: the two substitutions the CPU build of vLLM needs.

vLLM runs this as a `vllm.general_plugins` entry point (declared in pyproject.toml) in every
process it starts, the model-inspection subprocess included, before it imports a model. Where
torchvision imports (GPU machines) it does nothing. Elsewhere vLLM's Qwen2.5-VL fails twice:
- its model module imports `smart_resize` from transformers' torchvision image processor,
  which cannot import; the PIL image processor module defines the same function;
- it builds the stock `Qwen2_5_VLProcessor`, which needs a torchvision video processor; the
  architecture is re-registered as a subclass whose processor is our image-only one
  (`vlm.processor.ImageOnlyQwen2_5_VLProcessor`), with the same weights and the same prompts.
Kept cheap to import: the vLLM model subclass lives in `vlm.vllm_image_only` and is named by
path, so vLLM imports it only when it loads the model.
"""

from __future__ import annotations

import importlib
import sys

from vlm.processor import torchvision_available

QWEN2_5_VL_ARCHITECTURE = "Qwen2_5_VLForConditionalGeneration"
_TORCHVISION_IMAGE_PROCESSOR = "transformers.models.qwen2_vl.image_processing_qwen2_vl"
_PIL_IMAGE_PROCESSOR = "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl"


def register() -> None:
    """The plugin entry point; a no-op where torchvision imports."""
    if torchvision_available():
        return
    if _TORCHVISION_IMAGE_PROCESSOR not in sys.modules:
        try:
            importlib.import_module(_TORCHVISION_IMAGE_PROCESSOR)
        except Exception:  # noqa: BLE001 - a CUDA-linked torchvision raises RuntimeError, not ImportError
            sys.modules[_TORCHVISION_IMAGE_PROCESSOR] = importlib.import_module(_PIL_IMAGE_PROCESSOR)
    from vllm import ModelRegistry

    ModelRegistry.register_model(QWEN2_5_VL_ARCHITECTURE, "vlm.vllm_image_only:ImageOnlyQwen2_5_VL")
