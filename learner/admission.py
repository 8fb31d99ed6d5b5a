"""What a scored group must mean, beyond its form, before the replay queue accepts it.

`wire.scored_group.decode_group` checks that a frame is a well-formed group. A well-formed group
can still be one the learner step would fail on or learn nonsense from: a group size other than
the run's, token ids beyond the vocabulary, token versions from a policy not yet published,
rewards no reward kind of the run can give, completions longer than the policy may sample, an
image that does not decode or whose pad tokens in the prompt are not the ones its size gives, a
prompt the run never asked. Each is refused here with a reason (`Refused.reason`, what the
queue counts it under), so that nothing the queue accepts can fail a step.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from configs.schema import TrainConfig
from vlm.image_fetch import check_declared_size
from wire.buffers import MalformedMessage
from wire.scored_group import ScoredGroup


class Refused(MalformedMessage):
    """A group that decodes but means something the run cannot use; `reason` names the check."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"ScoredGroup refused ({reason}): {detail}")
        self.reason = reason


@dataclass(frozen=True)
class GroupBounds:
    """The run's facts a group is checked against (built by `run_bounds`)."""

    group_size: int  # rollout.group_size: every group has exactly this many completions
    max_completion_tokens: int  # rollout.sampling.max_new_tokens
    reward_floor: float  # the lowest reward the run's reward and shaping terms can give
    prompt_ids: frozenset[str] = frozenset()  # the run's prompts; empty = not checked
    reward_ceiling: float = 1.0


def reward_floor(config: TrainConfig) -> float:
    """The most the shaping terms can take off a reward of 0: the length term at the longest
    completion the policy may sample, a fully repeated text, and the format penalty."""
    shaping, longest = config.reward.shaping, config.rollout.sampling.max_new_tokens
    floor = 0.0
    if shaping.length_budget and longest > shaping.length_budget:
        floor -= shaping.length_penalty * (longest - shaping.length_budget) / shaping.length_budget
    if shaping.repetition_ngram:
        floor -= shaping.repetition_penalty
    if shaping.format_pattern:
        floor -= shaping.format_penalty
    return floor


def run_bounds(config: TrainConfig, prompt_ids: Iterable[str]) -> GroupBounds:
    return GroupBounds(
        group_size=config.rollout.group_size,
        max_completion_tokens=config.rollout.sampling.max_new_tokens,
        reward_floor=reward_floor(config),
        prompt_ids=frozenset(prompt_ids),
    )


@dataclass(frozen=True)
class ImageCheck:
    """How the policy's processor reads a group's image: the pixel bound it enforces and how
    many pad tokens an image of a given size expands to in the prompt."""

    pad_token_id: int
    pad_tokens: Callable[[Image.Image], int]


class GroupAdmission:
    """Checks each decoded group against the run's bounds and the learner's current state."""

    def __init__(
        self, bounds: GroupBounds | None, vocab_size: int, current_version: Callable[[], int], image: ImageCheck | None
    ):
        """`bounds` None (a learner started without a run's facts, as some tests start one): only
        the vocabulary, the versions and the image are checked."""
        self.bounds, self.vocab_size, self.current_version, self.image = bounds, vocab_size, current_version, image

    def check(self, group: ScoredGroup) -> None:
        """Raises Refused naming the first check the group fails."""
        if self.bounds is not None:
            self._check_bounds(group, self.bounds)
        highest = max(int(group.prompt_token_ids.max()), *(int(c.max()) for c in group.completion_ids))
        if highest >= self.vocab_size:
            raise Refused("token_id", f"token id {highest} is beyond the vocabulary ({self.vocab_size})")
        newest, current = max(int(v.max()) for v in group.token_versions), self.current_version()
        if newest > current:
            raise Refused("token_version", f"a token of policy version {newest}, the learner has published {current}")
        if self.image is not None:
            self._check_image(group)
        elif group.image_png:
            raise Refused(
                "image", "the group carries an image, but this learner trains a text policy (policy.role=reasoner)"
            )

    @staticmethod
    def _check_bounds(group: ScoredGroup, bounds: GroupBounds) -> None:
        if group.group_size != bounds.group_size:
            raise Refused("group_size", f"{group.group_size} completions, the run samples {bounds.group_size}")
        if bounds.prompt_ids and group.prompt_id not in bounds.prompt_ids:
            raise Refused("unknown_prompt", f"prompt id {group.prompt_id!r} is none of the run's")
        longest = max(len(c) for c in group.completion_ids)
        if longest > bounds.max_completion_tokens:
            raise Refused(
                "completion_length",
                f"a completion of {longest} tokens, the policy samples at most {bounds.max_completion_tokens}",
            )
        low, high = float(group.rewards.min()), float(group.rewards.max())
        # float32 on the wire: a reward at a bound may come back a rounding off it.
        slack = 1e-4 * max(1.0, abs(bounds.reward_floor))
        if low < bounds.reward_floor - slack or high > bounds.reward_ceiling + slack:
            raise Refused(
                "reward",
                f"rewards in [{low:.4g}, {high:.4g}], the run's lie in [{bounds.reward_floor:.4g}, "
                f"{bounds.reward_ceiling:.4g}]",
            )

    def _check_image(self, group: ScoredGroup) -> None:
        """The image decodes fully within the pixel bound, and the prompt holds exactly the pad
        tokens the processor expands it to (else the step's vision inputs would not line up)."""
        try:
            with Image.open(io.BytesIO(group.image_png), formats=["PNG"]) as image:
                check_declared_size(image)
                image.load()  # every pixel: checksums alone pass a stream that does not decode
                expected = self.image.pad_tokens(image.convert("RGB"))
        except Exception as err:  # Pillow raises many unrelated types for bad bytes
            raise Refused("image", f"image_png does not decode: {type(err).__name__}: {err}") from None
        pad = self.image.pad_token_id
        found = int(np.count_nonzero(group.prompt_token_ids == pad))
        if found != expected:
            raise Refused("image", f"the prompt holds {found} image pad tokens, the image expands to {expected}")
        # A pad token in a completion would pose as an image token in the step's forward pass.
        if any((ids == pad).any() for ids in group.completion_ids):
            raise Refused("token_id", "a completion holds the image pad token")
