"""The soak's poison groups: well-formed ScoredGroups that each carry one defect of a class the
replay queue must refuse for what it means (learner/admission.py), everything else about them
plausible for the run (its group size, a prompt it knows, lengths, ids and rewards in range),
so that each is refused for its own class and for no earlier check."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace

import numpy as np

from wire.scored_group import COUNTER_NAMES, ActorCounters, GroupTimings, ScoredGroup


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# Every chunk's checksum holds, but the pixel data is no zlib stream: verify() passes, decoding fails.
UNDECODABLE_PNG = (
    b"\x89PNG\r\n\x1a\n"
    + _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
    + _chunk(b"IDAT", b"not a zlib stream")
    + _chunk(b"IEND", b"")
)


@dataclass(frozen=True)
class PoisonSpec:
    """The run's facts a plausible group follows."""

    group_size: int
    max_completion_tokens: int
    prompt_id: str  # one of the run's prompts


POISON_CLASSES = ("group_size", "unknown_prompt", "completion_length", "token_id", "token_version", "reward", "image")


def plausible_group(spec: PoisonSpec, position: int) -> ScoredGroup:
    """A group the queue would take (policy version 0, no image), for a prompt position no actor reaches."""
    ids = np.arange(2, dtype=np.int32)
    return ScoredGroup(
        group_id=f"soak-poison-{position}",
        prompt_id=spec.prompt_id,
        actor_id=0,
        prompt_position=position,
        prompt_token_ids=np.arange(3, dtype=np.int32),
        image_png=b"",
        completion_ids=(ids,) * spec.group_size,
        behaviour_logprobs=(np.full(2, -0.5, np.float32),) * spec.group_size,
        token_versions=(np.zeros(2, np.int32),) * spec.group_size,
        rewards=np.zeros(spec.group_size, np.float32),
        answers=((),) * spec.group_size,
        timings=GroupTimings(0.0, 0.0, 0.0),
        counters=ActorCounters(**dict.fromkeys(COUNTER_NAMES, 0)),
    )


def poison_group(spec: PoisonSpec, kind: str, position: int) -> ScoredGroup:
    """`plausible_group` with the one defect of `kind`."""
    group = plausible_group(spec, position)
    size = spec.group_size
    if kind == "group_size":
        return replace(
            group,
            completion_ids=group.completion_ids * 2,
            behaviour_logprobs=group.behaviour_logprobs * 2,
            token_versions=group.token_versions * 2,
            rewards=np.zeros(2 * size, np.float32),
            answers=((),) * (2 * size),
        )
    if kind == "unknown_prompt":
        return replace(group, prompt_id=f"{spec.prompt_id}-never-asked")
    if kind == "completion_length":
        n = spec.max_completion_tokens + 1
        return replace(
            group,
            completion_ids=(np.zeros(n, np.int32),) * size,
            behaviour_logprobs=(np.full(n, -0.5, np.float32),) * size,
            token_versions=(np.zeros(n, np.int32),) * size,
        )
    if kind == "token_id":
        return replace(group, completion_ids=(np.array([0, 2**31 - 1], np.int32),) * size)
    if kind == "token_version":
        return replace(group, token_versions=(np.array([0, 2**31 - 1], np.int32),) * size)
    if kind == "reward":
        return replace(group, rewards=np.full(size, -3e38, np.float32))
    if kind == "image":
        return replace(group, image_png=UNDECODABLE_PNG)
    raise ValueError(f"unknown poison class {kind!r}; the classes are {POISON_CLASSES}")
