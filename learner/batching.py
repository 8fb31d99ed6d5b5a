"""Turn a ScoredGroup into model inputs for the teacher-forced forward pass."""

from __future__ import annotations

import io
from dataclasses import dataclass

import torch
from PIL import Image

from vlm.caption_prompt import mm_token_type_ids, vision_inputs
from wire.scored_group import ScoredGroup


@dataclass
class PolicyBatch:
    """One group's G sequences (prompt + completion, right-padded) and what the loss needs; the
    image's inputs are None for a text policy (policy.role=reasoner)."""

    input_ids: torch.Tensor  # [G, L + T] long
    attention_mask: torch.Tensor  # [G, L + T]
    prompt_len: int  # L
    completion_ids: torch.Tensor  # [G, T] long, right-padded
    completion_mask: torch.Tensor  # [G, T] float, 1 on sampled tokens
    behaviour_logprobs: torch.Tensor  # [G, T] float
    token_versions: torch.Tensor  # [G, T] long, the policy version that sampled each token; -1 on padding
    advantages: torch.Tensor  # [G]
    mm_token_type_ids: torch.Tensor | None = None  # [G, L + T]
    pixel_values: torch.Tensor | None = None  # [G x patches, D], the image's patches once per sequence
    image_grid_thw: torch.Tensor | None = None  # [G, 3]

    def to(self, device: str | torch.device) -> "PolicyBatch":
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self

    def model_inputs(self) -> dict[str, torch.Tensor]:
        names = ("input_ids", "attention_mask", "mm_token_type_ids", "pixel_values", "image_grid_thw")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


def decode_png(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def group_batch(group: ScoredGroup, processor, advantages: torch.Tensor, pad_id: int) -> PolicyBatch:
    """Rebuild exactly what generation saw: the prompt ids as sent, the image re-processed
    (`processor` None: a text policy's prompt, no image)."""
    batch = _text_batch(group, advantages, pad_id)
    if processor is None:
        return batch
    size = group.group_size
    pixel_values, grid_thw = vision_inputs(processor, decode_png(group.image_png))
    image_token_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    batch.mm_token_type_ids = mm_token_type_ids(batch.input_ids, image_token_id)
    batch.pixel_values = pixel_values.repeat(size, 1)
    batch.image_grid_thw = grid_thw.reshape(1, 3).repeat(size, 1)
    return batch


def _text_batch(group: ScoredGroup, advantages: torch.Tensor, pad_id: int) -> PolicyBatch:
    size = group.group_size
    prompt = torch.tensor(group.prompt_token_ids, dtype=torch.long)
    max_len = max(len(c) for c in group.completion_ids)
    completion_ids = torch.full((size, max_len), pad_id, dtype=torch.long)
    completion_mask = torch.zeros((size, max_len))
    behaviour = torch.zeros((size, max_len))
    versions = torch.full((size, max_len), -1, dtype=torch.long)
    for i, (ids, logp, version) in enumerate(zip(group.completion_ids, group.behaviour_logprobs, group.token_versions)):
        completion_ids[i, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        completion_mask[i, : len(ids)] = 1.0
        behaviour[i, : len(ids)] = torch.from_numpy(logp.copy())
        versions[i, : len(ids)] = torch.as_tensor(version, dtype=torch.long)
    return PolicyBatch(
        input_ids=torch.cat([prompt.expand(size, -1), completion_ids], dim=1),
        attention_mask=torch.cat([torch.ones(size, len(prompt), dtype=torch.long), completion_mask.long()], dim=1),
        prompt_len=len(prompt),
        completion_ids=completion_ids,
        completion_mask=completion_mask,
        behaviour_logprobs=behaviour,
        token_versions=versions,
        advantages=advantages,
    )
