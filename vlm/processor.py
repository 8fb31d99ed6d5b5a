"""Loading the captioner's processor and the reasoner's tokenizer.

This is the one place that knows about the CPU fallback. `Qwen2_5_VLProcessor` needs a video
processor, and transformers' video processors need torchvision, which has no CPU wheel that
loads on our CPU machines. There we use an image-only subclass; everywhere else (GPU machines,
where torchvision exists) the stock `AutoProcessor` path is taken untouched.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Any

from transformers import (
    AutoProcessor,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    Qwen2_5_VLConfig,
)
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.processing_utils import ProcessorMixin


@functools.cache  # asked per image load: a failed import is not cached by Python itself
def torchvision_available() -> bool:
    """Whether torchvision really imports (an installed but CUDA-linked one raises on import).

    It decides which processor we build: with torchvision, the stock Qwen2.5-VL processor
    (images and videos); without it, the image-only processor below.
    """
    try:
        importlib.import_module("torchvision")
    except Exception:  # noqa: BLE001 - a broken install raises RuntimeError, not ImportError
        return False
    return True


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL processor without a video processor, for machines without torchvision.

    ProcessorMixin derives its sub-processors from the `__init__` signature, so leaving out
    `video_processor` here is what makes it loadable: text and images are processed exactly
    as the stock processor does (same placeholder expansion, same mm_token_type_ids).
    """

    def __init__(
        self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None, **kwargs: Any
    ):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = getattr(tokenizer, "image_token_id", None) or tokenizer.convert_tokens_to_ids(
            self.image_token
        )
        self.video_token_id = getattr(tokenizer, "video_token_id", None) or tokenizer.convert_tokens_to_ids(
            self.video_token
        )
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        # Saved under the stock name, so a checkpoint written on a CPU machine loads with the
        # plain AutoProcessor on a GPU machine, like any released Qwen2.5-VL checkpoint.
        output = super().to_dict()
        output["processor_class"] = Qwen2_5_VLProcessor.__name__
        return output


def _register_image_only_processor() -> None:
    # For checkpoints that name no processor class, AutoProcessor resolves one by config type:
    # the stock class, which raises for want of torchvision (transformers 5.19; some versions
    # instead fall back to a bare tokenizer and drop the images). Map the config to ours.
    AutoProcessor.register(Qwen2_5_VLConfig, ImageOnlyQwen2_5_VLProcessor, exist_ok=True)


def load_captioner_processor(path: str | Path) -> ProcessorMixin:
    """The processor of a Qwen2.5-VL checkpoint directory (tokenizer + image processor)."""
    if torchvision_available():
        return AutoProcessor.from_pretrained(str(path))
    _register_image_only_processor()
    # Named directly: a checkpoint's processor config says "Qwen2_5_VLProcessor", and AutoProcessor
    # would follow that name to the stock class, which cannot be built here.
    return ImageOnlyQwen2_5_VLProcessor.from_pretrained(str(path))


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The reasoner's tokenizer (a text-only checkpoint needs nothing else)."""
    return AutoTokenizer.from_pretrained(str(path))
