"""A weight update is checked against the policy before an engine loads it (actors/weight_checks.py):
every name, exact shape and value, and the version; a refused one leaves the weights as they were."""

from __future__ import annotations

import asyncio

import pytest
import torch

from actors.weight_checks import MAX_VERSION, check_weight_update, policy_shapes
from learner.weight_publisher import weight_update
from wire.buffers import MalformedMessage

SHAPES = {"layer.weight": (3, 4), "layer.bias": (4,)}


def _update(version: int = 2, **tensors: torch.Tensor):
    tensors = tensors or {"layer.weight": torch.ones(3, 4), "layer.bias": torch.zeros(4)}
    return weight_update(version, {name.replace("__", "."): t for name, t in tensors.items()})


def test_an_update_that_fits_the_policy_passes():
    check_weight_update(_update(), SHAPES, current_version=1)
    check_weight_update(_update(layer__bias=torch.zeros(4, dtype=torch.bfloat16)), SHAPES, 1)  # any weight dtype


@pytest.mark.parametrize(
    ("update", "current", "reason"),
    [
        (_update(layer__other=torch.zeros(4)), 1, "names 'layer.other', which the policy does not have"),
        # [1, 4] would broadcast over [3, 4] in a copy: the shape must be exact.
        (_update(layer__weight=torch.ones(1, 4)), 1, r"layer.weight has shape \[1, 4\], the policy's is \[3, 4\]"),
        (
            _update(layer__bias=torch.tensor([0.0, float("nan"), 0.0, 0.0])),
            1,
            "layer.bias holds a value that is not finite",
        ),
        (_update(layer__bias=torch.tensor([0.0, float("inf"), 0.0, 0.0])), 1, "not finite"),
        (_update(version=1), 1, "version 1: the engine is at 1"),
        (_update(version=MAX_VERSION + 1), 1, f"versions stop at {MAX_VERSION}"),
    ],
)
def test_an_update_that_does_not_fit_is_refused_naming_why(update, current, reason):
    with pytest.raises(MalformedMessage, match=reason):
        check_weight_update(update, SHAPES, current)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random captioner, saved as a user's checkpoint is."""
    from task.checkpoints import build_tiny_captioner
    from task.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(["top left: a red circle.", "How many objects are there?"] * 20)
    return build_tiny_captioner(tmp_path_factory.mktemp("policy") / "captioner", tokenizer, seed=0)


def test_the_policys_shapes_are_the_learners_names_and_shapes(checkpoint):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(checkpoint)
    assert policy_shapes(str(checkpoint), text_only=False) == {n: tuple(p.shape) for n, p in model.named_parameters()}


def test_a_refused_update_leaves_the_engine_serving_its_weights(checkpoint):
    """An HF caption engine is given a wrongly shaped update through the actor's check: the
    weights and the version stay; a fitting one then loads."""
    from actors.hf_engine import TransformersCaptionEngine

    engine = TransformersCaptionEngine(str(checkpoint), seed=0)
    shapes = policy_shapes(str(checkpoint), text_only=False)
    name, shape = next(iter(shapes.items()))
    before = dict(engine.model.named_parameters())[name].detach().clone()
    wrong = weight_update(1, {name: torch.ones(1, *shape[1:])})
    with pytest.raises(MalformedMessage):
        check_weight_update(wrong, shapes, engine.policy_version)
    assert torch.equal(dict(engine.model.named_parameters())[name], before) and engine.policy_version == 0
    right = weight_update(1, {name: torch.full(shape, 0.5)})
    check_weight_update(right, shapes, engine.policy_version)
    asyncio.run(engine.update_weights(right))
    assert (
        torch.equal(dict(engine.model.named_parameters())[name], torch.full(shape, 0.5)) and engine.policy_version == 1
    )


def test_a_broadcast_round_is_checked_on_what_it_announces():
    from actors.weight_checks import check_announced

    check_announced(2, [("layer.weight", [3, 4]), ("layer.bias", [4])], SHAPES, current_version=1)
    with pytest.raises(MalformedMessage, match=r"layer.bias has shape \[1, 4\]"):
        check_announced(2, [("layer.bias", [1, 4])], SHAPES, current_version=1)
    with pytest.raises(MalformedMessage, match="names 'x'"):
        check_announced(2, [("x", [4])], SHAPES, current_version=1)
    with pytest.raises(MalformedMessage, match="version 1: the engine is at 1"):
        check_announced(1, [], SHAPES, current_version=1)
