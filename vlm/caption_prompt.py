"""Captioner prompts: the RACRO query-conditioned caption request, encoded for Qwen2.5-VL.

Generation and the learner's teacher-forced forward must see exactly the same inputs
(token ids with the image expanded, pixel values, image grid and mm_token_type_ids); the
helpers here are the single place both build them from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

CAPTION_SYSTEM_PROMPT = "Describe the image in detail. Do not answer the question."
_CAPTION_INSTRUCTION = "Describe the image for this question. Do not answer it."


@dataclass
class CaptionPrompt:
    """One encoded caption request for one image."""

    input_ids: np.ndarray  # int32 [L], the image placeholder already expanded to its pad tokens
    pixel_values: torch.Tensor  # [num_patches, C * temporal_patch * patch * patch]
    image_grid_thw: torch.Tensor  # [1, 3] (temporal, height, width) in patches
    image_token_id: int  # the pad token standing for vision tokens; needed for mm_token_type_ids
    image: Image.Image | None = None  # the image itself, for engines that process it themselves (vLLM)

    def unexpanded_ids(self) -> list[int]:
        """The prompt with the image's run of pad tokens folded back into one: what vLLM expands itself.

        vLLM given the already-expanded ids expands only the first pad and silently builds a
        wrong prompt, so every engine that does its own image processing takes these.
        """
        ids = self.input_ids.tolist()
        return [t for i, t in enumerate(ids) if t != self.image_token_id or i == 0 or ids[i - 1] != t]


def caption_messages(question: str) -> list[dict[str, Any]]:
    """RACRO's caption request: the image, the question, then "describe, do not answer"."""
    return [
        {"role": "system", "content": CAPTION_SYSTEM_PROMPT},
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": f"{question}\n{_CAPTION_INSTRUCTION}"},
            ],
        },
    ]


ANSWER_SYSTEM_PROMPT = (
    "Answer the question about the image. Think step by step, then give the final answer in \\boxed{}."
)


def answer_messages(question: str) -> list[dict[str, Any]]:
    """The captioner asked to answer for itself: the two-stage inference's tentative answer."""
    return [
        {"role": "system", "content": ANSWER_SYSTEM_PROMPT},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
    ]


def _image_token_id(processor: Any) -> int:
    return int(processor.tokenizer.convert_tokens_to_ids(processor.image_token))


def encode_caption_prompt(processor: Any, question: str, image: Image.Image) -> CaptionPrompt:
    """Encode the caption request for `question` about `image` with the captioner's processor."""
    return encode_image_prompt(processor, caption_messages(question), image)


def encode_image_prompt(processor: Any, messages: list[dict[str, Any]], image: Image.Image) -> CaptionPrompt:
    """Encode a one-image conversation (`caption_messages`, `answer_messages`) with the captioner's processor."""
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    encoded = processor(text=[text], images=[image], return_tensors="pt")
    return CaptionPrompt(
        input_ids=encoded["input_ids"][0].numpy().astype(np.int32),
        pixel_values=encoded["pixel_values"],
        image_grid_thw=encoded["image_grid_thw"],
        image_token_id=_image_token_id(processor),
        image=image,
    )


def vision_inputs(processor: Any, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixel_values, image_grid_thw) for one image, as `encode_caption_prompt` computes them.

    The learner rebuilds the vision inputs from the image alone with this, so no pixel
    tensors need to travel with a rollout.
    """
    encoded = processor.image_processor(images=[image], return_tensors="pt")
    return encoded["pixel_values"], encoded["image_grid_thw"]


def image_pad_tokens(processor: Any, image: Image.Image) -> int:
    """How many pad tokens `image` expands to in a prompt: its patch grid, merged."""
    _, grid_thw = vision_inputs(processor, image)
    return int(grid_thw.prod()) // processor.image_processor.merge_size**2


def mm_token_type_ids(input_ids: torch.Tensor, image_token_id: int) -> torch.Tensor:
    """1 where a token stands for a vision token of an image, 0 elsewhere (the processor's convention).

    Qwen2.5-VL builds its 3D (multimodal RoPE) positions from these; without them the model
    silently falls back to 1D positions and its logprobs shift.
    """
    return (input_ids == image_token_id).to(torch.long)


def batch_caption_inputs(prompts: list[CaptionPrompt], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-pad a batch of prompts into the keyword arguments of `model.generate` / forward.

    Left padding keeps every prompt's last token in the last column, where generation appends.
    """
    if not prompts:
        raise ValueError("batch_caption_inputs needs at least one prompt")
    image_token_ids = {prompt.image_token_id for prompt in prompts}
    if len(image_token_ids) != 1:
        raise ValueError(f"prompts disagree on the image token id: {sorted(image_token_ids)}")
    length = max(len(prompt.input_ids) for prompt in prompts)
    input_ids = torch.full((len(prompts), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        start = length - len(prompt.input_ids)
        input_ids[row, start:] = torch.from_numpy(prompt.input_ids.astype(np.int64))
        attention_mask[row, start:] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "pixel_values": torch.cat([prompt.pixel_values for prompt in prompts], dim=0),
        "image_grid_thw": torch.cat([prompt.image_grid_thw for prompt in prompts], dim=0),
        # Masked so a pad id that happened to equal the image id could never pose as an image.
        "mm_token_type_ids": mm_token_type_ids(input_ids, image_token_ids.pop()) * attention_mask,
    }


VISION_SPECIAL_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")


def suppressed_caption_token_ids(tokenizer: Any) -> list[int]:
    """Token ids a caption may never contain: the vision placeholders.

    A sampled `<|image_pad|>` would pose as an image token in the teacher-forced forward (and
    break it), so generation masks these ids and the learner masks the same ids when it
    computes logprobs: both then describe the one distribution that was sampled from.
    """
    return [int(tokenizer.convert_tokens_to_ids(token)) for token in VISION_SPECIAL_TOKENS]
