"""What a weight update must be before an actor's engine loads it.

The decoder (`wire.weights`) checks that the frames are a well-formed update. Loading one that
is well-formed but wrong would break the engine or silently change the policy: a name the policy
does not have, a tensor of another shape (a copy would broadcast a [1, N] tensor over an [M, N]
parameter), a NaN, a version that is not newer or past int32 (the groups' token versions are
int32). Each is refused here,
counted (`rollout/weight_updates_rejected`), and the actor keeps its weights and serving.

The shapes are those of the policy's model class built from its checkpoint's config on the meta
device (no weight is loaded): the names the learner publishes, whatever engine serves it, also
for a checkpoint whose files use an older naming that transformers maps on loading. A tensor's
dtype may be any weight dtype: the engine converts to its own, so a learner training in fp32
serves a bf16 engine.
"""

from __future__ import annotations

import torch

from actors.weight_tensors import as_torch
from wire.buffers import MalformedMessage
from wire.weights import WeightUpdate

# Policy versions travel as int32 token versions in every scored group.
MAX_VERSION = 2**31 - 1


def policy_shapes(checkpoint: str, text_only: bool) -> dict[str, tuple[int, ...]]:
    """Each parameter's shape, as the learner's model of `checkpoint` names it."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    model_class = AutoModelForCausalLM if text_only else AutoModelForImageTextToText
    with torch.device("meta"):
        model = model_class.from_config(AutoConfig.from_pretrained(checkpoint))
    return {name: tuple(parameter.shape) for name, parameter in model.named_parameters()}


def check_announced(
    version: int, tensors: list[tuple[str, tuple[int, ...]]], shapes: dict[str, tuple[int, ...]], current_version: int
) -> None:
    """The version and every (name, shape) an update announces (a ZeroMQ update's header, or a
    broadcast Round before its tensors come), against a policy of `shapes`."""
    if not current_version < version <= MAX_VERSION:
        raise MalformedMessage(
            f"weight update version {version}: the engine is at {current_version}, and versions stop at {MAX_VERSION}"
        )
    for name, shape in tensors:
        expected = shapes.get(name)
        if expected is None:
            raise MalformedMessage(f"weight update v{version} names {name[:100]!r}, which the policy does not have")
        if tuple(shape) != expected:
            raise MalformedMessage(
                f"weight update v{version}: {name} has shape {list(shape)}, the policy's is {list(expected)}"
            )


def check_weight_update(update: WeightUpdate, shapes: dict[str, tuple[int, ...]], current_version: int) -> None:
    """Raises MalformedMessage naming the first thing `update` gets wrong for a policy of `shapes`."""
    check_announced(update.version, [(raw.name, raw.shape) for raw in update.tensors], shapes, current_version)
    for raw in update.tensors:
        if not torch.isfinite(as_torch(raw)).all():
            raise MalformedMessage(f"weight update v{update.version}: {raw.name} holds a value that is not finite")
