"""ScoredGroup: what a rollout actor sends the learner's replay queue.

One message = one GRPO group: G captions of one prompt, each with its token ids, the behaviour
logprob of every token (under the distribution it was sampled from), the policy version that
sampled every token (an engine may swap weights mid-caption), and its reward. The prompt travels
too (token ids + image bytes), so the learner rebuilds exactly the inputs generation saw
without reading the dataset.

Imports only numpy and msgpack: safe to import anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from wire.buffers import (
    MalformedMessage,
    pack,
    pack_array,
    require,
    unpack,
    unpack_array,
)

SCHEMA_VERSION = 6
WHAT = "ScoredGroup"


@dataclass(frozen=True)
class GroupTimings:
    """Seconds spent on the group, and when it was sent (unix time)."""

    generate_s: float
    score_s: float
    sent_at: float


@dataclass(frozen=True)
class ActorCounters:
    """The sending actor's running totals, so the learner reports them with no other channel."""

    groups_generated: int
    groups_lost: int  # generated but never sent: scoring kept failing
    bad_records: int  # prompts skipped: their image could not be read
    score_failures: int  # scoring attempts that failed or timed out (and were retried)
    answers_refused: int  # reasoner answers graded wrong unparsed: too costly to grade
    empty_captions: int  # captions scored 0 without a reasoner call: empty
    judge_unparsed: int  # judge replies out of format, scored 0
    weight_updates: int  # policy versions swapped in
    weight_updates_rejected: int  # malformed weight updates ignored
    policy_version: int  # not a total: the weights the actor held when it sent the group
    # Last, with a default: counters saved by a run from before it was counted still load.
    format_timeouts: int = 0  # captions whose format-pattern match ran past its time bound


COUNTER_NAMES = tuple(ActorCounters.__dataclass_fields__)


@dataclass(frozen=True)
class ScoredGroup:
    group_id: str
    prompt_id: str
    actor_id: int
    # The prompt's position in the actor's prompt stream (wire/progress.py): what the learner's
    # accounting and a restarted or resumed actor go by.
    prompt_position: int
    prompt_token_ids: np.ndarray  # int32 [L], image already expanded to its pad tokens
    image_png: bytes  # the image exactly as the processor saw it, PNG-encoded
    completion_ids: tuple[np.ndarray, ...]  # G x int32 [T_i], sampled tokens incl. the final EOS
    behaviour_logprobs: tuple[np.ndarray, ...]  # G x float32 [T_i]
    token_versions: tuple[np.ndarray, ...]  # G x int32 [T_i], policy version that sampled each token
    rewards: np.ndarray  # float32 [G], each at most 1 (in [0, 1] less any shaping penalty)
    answers: tuple[tuple[str, ...], ...]  # G x k reasoner answers, for inspection
    timings: GroupTimings
    counters: ActorCounters

    @property
    def group_size(self) -> int:
        return len(self.completion_ids)

    @property
    def sample_versions(self) -> np.ndarray:
        """int32 [G]: each completion's oldest token version."""
        return np.array([v.min() for v in self.token_versions], dtype=np.int32)

    @property
    def policy_version(self) -> int:
        """The oldest version among the group's samples (what staleness is measured from)."""
        return int(self.sample_versions.min())

    def num_tokens(self) -> int:
        return int(sum(len(c) for c in self.completion_ids))


def encode_group(group: ScoredGroup) -> bytes:
    lengths = np.array([len(c) for c in group.completion_ids], dtype=np.int32)
    return pack(
        {
            "schema": SCHEMA_VERSION,
            "group_id": group.group_id,
            "prompt_id": group.prompt_id,
            "actor_id": group.actor_id,
            "prompt_position": group.prompt_position,
            "prompt_token_ids": pack_array(group.prompt_token_ids.astype(np.int32)),
            "image_png": group.image_png,
            "lengths": pack_array(lengths),
            "completion_ids": pack_array(np.concatenate(group.completion_ids).astype(np.int32)),
            "behaviour_logprobs": pack_array(np.concatenate(group.behaviour_logprobs).astype(np.float32)),
            "token_versions": pack_array(np.concatenate(group.token_versions).astype(np.int32)),
            "rewards": pack_array(group.rewards.astype(np.float32)),
            "answers": [list(a) for a in group.answers],
            "timings": [group.timings.generate_s, group.timings.score_s, group.timings.sent_at],
            "counters": [getattr(group.counters, name) for name in COUNTER_NAMES],
        }
    )


def decode_group(frame: bytes) -> ScoredGroup:
    """Decode and validate; raises MalformedMessage with the reason on any inconsistency."""
    obj = unpack(frame, WHAT)
    if obj.get("schema") != SCHEMA_VERSION:
        raise MalformedMessage(f"{WHAT} schema {obj.get('schema')!r}, expected {SCHEMA_VERSION}")
    lengths = unpack_array(obj.get("lengths"), "lengths", "int32", ndim=1)
    group_size = len(lengths)
    if group_size < 1 or (lengths < 1).any():
        raise MalformedMessage(f"{WHAT} needs >= 1 completion, each of >= 1 token; lengths={lengths.tolist()}")
    flat_ids = unpack_array(obj.get("completion_ids"), "completion_ids", "int32", ndim=1)
    flat_logp = unpack_array(obj.get("behaviour_logprobs"), "behaviour_logprobs", "float32", ndim=1)
    flat_versions = unpack_array(obj.get("token_versions"), "token_versions", "int32", ndim=1)
    total = int(lengths.sum())
    if len(flat_ids) != total or len(flat_logp) != total or len(flat_versions) != total:
        raise MalformedMessage(
            f"{WHAT}: lengths sum to {total} but there are {len(flat_ids)} ids, "
            f"{len(flat_logp)} logprobs and {len(flat_versions)} token versions"
        )
    if (flat_versions < 0).any():
        raise MalformedMessage(f"{WHAT}: token versions must be >= 0")
    if not np.isfinite(flat_logp).all() or (flat_logp > 1e-4).any():
        raise MalformedMessage(f"{WHAT}: behaviour logprobs must be finite and <= 0")
    prompt = unpack_array(obj.get("prompt_token_ids"), "prompt_token_ids", "int32", ndim=1)
    if (flat_ids < 0).any() or (prompt < 0).any() or len(prompt) == 0:
        raise MalformedMessage(f"{WHAT}: token ids must be >= 0 and the prompt non-empty")
    splits = np.cumsum(lengths)[:-1]
    return ScoredGroup(
        group_id=require(obj, "group_id", str, WHAT),
        prompt_id=require(obj, "prompt_id", str, WHAT),
        actor_id=_non_negative(obj, "actor_id"),
        prompt_position=_non_negative(obj, "prompt_position"),
        prompt_token_ids=prompt,
        image_png=require(obj, "image_png", bytes, WHAT),
        completion_ids=tuple(np.split(flat_ids, splits)),
        behaviour_logprobs=tuple(np.split(flat_logp, splits)),
        token_versions=tuple(np.split(flat_versions, splits)),
        rewards=_per_sample(obj, "rewards", "float32", group_size, lambda r: (np.isfinite(r) & (r <= 1)).all()),
        answers=_answers(obj, group_size),
        timings=_timings(obj),
        counters=_counters(obj),
    )


def _non_negative(obj: dict, key: str) -> int:
    value = require(obj, key, int, WHAT)
    if value < 0:
        raise MalformedMessage(f"{WHAT}: {key} must be >= 0, got {value}")
    return value


def _per_sample(obj: dict, key: str, dtype: str, group_size: int, valid) -> np.ndarray:
    values = unpack_array(obj.get(key), key, dtype, ndim=1)
    if len(values) != group_size:
        raise MalformedMessage(f"{WHAT}: {key} has {len(values)} entries for {group_size} completions")
    if not valid(values):
        raise MalformedMessage(f"{WHAT}: {key} out of range: {values.tolist()}")
    return values


def _answers(obj: dict, group_size: int) -> tuple[tuple[str, ...], ...]:
    answers = require(obj, "answers", list, WHAT)
    if len(answers) != group_size or not all(
        isinstance(a, list) and all(isinstance(s, str) for s in a) for a in answers
    ):
        raise MalformedMessage(f"{WHAT}: answers must be {group_size} lists of strings")
    return tuple(tuple(a) for a in answers)


def _timings(obj: dict) -> GroupTimings:
    values = require(obj, "timings", list, WHAT)
    if len(values) != 3 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        raise MalformedMessage(f"{WHAT}: timings must be 3 finite numbers")
    return GroupTimings(*(float(v) for v in values))


def _counters(obj: dict) -> ActorCounters:
    values = require(obj, "counters", list, WHAT)
    if len(values) != len(COUNTER_NAMES) or not all(type(v) is int and v >= 0 for v in values):
        raise MalformedMessage(
            f"{WHAT}: counters must be {len(COUNTER_NAMES)} integers >= 0 ({', '.join(COUNTER_NAMES)})"
        )
    return ActorCounters(*values)
