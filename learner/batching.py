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
    """One micro-batch: the sequences (prompt + completion) of one caption group or several, and
    what the loss needs. Prompts end together (left-padded where groups' prompts differ in
    length), so every completion starts at `prompt_len`; completions are right-padded. The image
    inputs are None for a text policy (policy.role=reasoner)."""

    input_ids: torch.Tensor  # [S, L + T] long
    attention_mask: torch.Tensor  # [S, L + T]
    prompt_len: int  # L
    completion_ids: torch.Tensor  # [S, T] long, right-padded
    completion_mask: torch.Tensor  # [S, T] float, 1 on sampled tokens
    behaviour_logprobs: torch.Tensor  # [S, T] float
    token_versions: torch.Tensor  # [S, T] long, the policy version that sampled each token; -1 on padding
    advantages: torch.Tensor  # [S]
    mm_token_type_ids: torch.Tensor | None = None  # [S, L + T]
    # Each group's image once ([its patches, D], groups in order): the vision tower encodes it
    # once and every sequence of the group reads the result (learner/shared_vision.py).
    pixel_values: torch.Tensor | None = None
    image_grid_thw: torch.Tensor | None = None  # [S, 3], the image grid of each sequence
    sequences_per_image: tuple[int, ...] = ()  # how many consecutive sequences share each image

    def to(self, device: str | torch.device) -> PolicyBatch:
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """The model's inputs but the image's patches, which `shared_vision.forward_inputs` adds."""
        names = ("input_ids", "attention_mask", "mm_token_type_ids", "image_grid_thw")
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
    batch.pixel_values = pixel_values
    batch.image_grid_thw = grid_thw.reshape(1, 3).repeat(size, 1)
    batch.sequences_per_image = (size,)
    return batch


def packed(batches: list[PolicyBatch], pad_id: int) -> PolicyBatch:
    """Several groups' batches as one micro-batch: each prompt left-padded to the longest, so that
    every completion starts at one position, and each completion right-padded to the longest.
    The padding is masked out, and the left padding moves a row's positions by one constant,
    which rotary position embeddings (the Qwen models') do not see: attention depends only on
    the distance between two tokens."""
    if len(batches) == 1:
        return batches[0]
    prompt_len = max(b.prompt_len for b in batches)
    steps = max(b.completion_ids.shape[1] for b in batches)

    def whole(name: str, fill: float) -> torch.Tensor:
        """A [S, L + T] field: each batch's prompt part padded on the left, its completion part on the right."""
        parts = []
        for b in batches:
            value = getattr(b, name)
            prompt, completion = value[:, : b.prompt_len], value[:, b.prompt_len :]
            parts.append(
                torch.cat([_pad(prompt, prompt_len, fill, left=True), _pad(completion, steps, fill, left=False)], dim=1)
            )
        return torch.cat(parts)

    def completions(name: str, fill: float) -> torch.Tensor:
        return torch.cat([_pad(getattr(b, name), steps, fill, left=False) for b in batches])

    batch = PolicyBatch(
        input_ids=whole("input_ids", pad_id),
        attention_mask=whole("attention_mask", 0),
        prompt_len=prompt_len,
        completion_ids=completions("completion_ids", pad_id),
        completion_mask=completions("completion_mask", 0),
        behaviour_logprobs=completions("behaviour_logprobs", 0),
        token_versions=completions("token_versions", -1),
        advantages=torch.cat([b.advantages for b in batches]),
    )
    if batches[0].pixel_values is None:
        return batch
    batch.mm_token_type_ids = whole("mm_token_type_ids", 0)
    batch.pixel_values = torch.cat([b.pixel_values for b in batches])
    batch.image_grid_thw = torch.cat([b.image_grid_thw for b in batches])
    batch.sequences_per_image = tuple(n for b in batches for n in b.sequences_per_image)
    return batch


def _pad(value: torch.Tensor, width: int, fill: float, left: bool) -> torch.Tensor:
    """`value` [S, w] widened to [S, width] with `fill` on the left or the right."""
    padding = value.new_full((value.shape[0], width - value.shape[1]), fill)
    return torch.cat([padding, value] if left else [value, padding], dim=1)


def _text_batch(group: ScoredGroup, advantages: torch.Tensor, pad_id: int) -> PolicyBatch:
    size = group.group_size
    prompt = torch.tensor(group.prompt_token_ids, dtype=torch.long)
    max_len = max(len(c) for c in group.completion_ids)
    completion_ids = torch.full((size, max_len), pad_id, dtype=torch.long)
    completion_mask = torch.zeros((size, max_len))
    behaviour = torch.zeros((size, max_len))
    versions = torch.full((size, max_len), -1, dtype=torch.long)
    for i, (ids, logp, version) in enumerate(zip(group.completion_ids, group.behaviour_logprobs, group.token_versions)):
        completion_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)  # copied: the frame's arrays are read-only
        completion_mask[i, : len(ids)] = 1.0
        behaviour[i, : len(ids)] = torch.from_numpy(logp.copy())
        versions[i, : len(ids)] = torch.tensor(version, dtype=torch.long)
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
