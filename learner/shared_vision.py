"""Each caption group's image through the vision tower once, not once per caption.

A group's G sequences share one image. Given the image's patches once per sequence, the model
would encode them G times; encoded once, the same features fill every sequence's image tokens:
equal values, and under a trained vision tower equal gradients (the G uses of one output add up
as G copies' gradients would).
"""

from __future__ import annotations

import functools
import inspect

import torch

from learner.batching import PolicyBatch


def forward_inputs(model: torch.nn.Module, batch: PolicyBatch) -> dict:
    """The keyword arguments of `model`'s forward for `batch`, its images encoded once each."""
    inputs: dict = batch.model_inputs()
    if batch.pixel_values is None:
        return inputs
    module = getattr(model, "module", model)  # a DeepSpeed engine holds the model as .module
    if not _takes_encoder_outputs(type(module)):
        inputs["pixel_values"] = _patches_per_sequence(batch)
        return inputs
    encoded = module.get_image_features(batch.pixel_values, batch.image_grid_thw[_first_rows(batch)], return_dict=True)
    per_image = encoded.pooler_output  # one tensor of features per image
    encoded.pooler_output = tuple(
        f for f, rows in zip(per_image, batch.sequences_per_image, strict=True) for _ in range(rows)
    )
    inputs["mm_encoder_outputs"] = {"image": encoded}
    return inputs


@functools.cache
def _takes_encoder_outputs(model_class: type) -> bool:
    """Whether the model's forward takes precomputed image features (transformers >= 5.18); an
    older one is given each image's patches once per sequence and encodes them that often."""
    return "mm_encoder_outputs" in inspect.signature(model_class.forward).parameters


def _first_rows(batch: PolicyBatch) -> torch.Tensor:
    """The index of each image's first sequence."""
    return torch.tensor([0, *batch.sequences_per_image[:-1]]).cumsum(0)


def _patches_per_sequence(batch: PolicyBatch) -> torch.Tensor:
    sizes = batch.image_grid_thw[_first_rows(batch)].prod(-1).tolist()
    images = torch.split(batch.pixel_values, sizes)
    return torch.cat([image.repeat(rows, 1) for image, rows in zip(images, batch.sequences_per_image, strict=True)])
