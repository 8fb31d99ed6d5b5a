"""ScoredGroup, WeightUpdate and weight broadcast wire formats: round trips, and bad frames
rejected with a reason."""

import io
import struct
import zlib

import msgpack
import numpy as np
import pytest
import torch
from PIL import Image

from actors.weight_tensors import named_tensors
from learner.admission import GroupAdmission, GroupBounds, ImageCheck
from learner.weight_publisher import weight_update
from wire.broadcast import Ack, Hello, Join, Round, decode_message, encode_message
from wire.buffers import MalformedMessage, pack_array
from wire.scored_group import (
    ActorCounters,
    GroupTimings,
    ScoredGroup,
    decode_group,
    encode_group,
)
from wire.weights import decode_weight_update, encode_weight_update

# The first completion was sampled across an update from version 2 to 3 after its first token.
TOKEN_VERSIONS = ([2, 3, 3], [3])


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


TINY_PNG = _png(4, 4)


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height pixels and holds none: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def make_group(rewards=(1.0, 0.0), image_bytes: int = 8, prompt_position: int = 5) -> ScoredGroup:
    lengths = [len(v) for v in TOKEN_VERSIONS]
    return ScoredGroup(
        group_id="g1",
        prompt_id="p7",
        actor_id=1,
        prompt_position=prompt_position,
        prompt_token_ids=np.arange(5, dtype=np.int32),
        image_png=TINY_PNG + b"." * image_bytes,  # bytes after the PNG's end are ignored by readers
        completion_ids=tuple(np.arange(n, dtype=np.int32) + 10 for n in lengths),
        behaviour_logprobs=tuple(-np.linspace(0.1, 1.0, n, dtype=np.float32) for n in lengths),
        token_versions=tuple(np.array(v, dtype=np.int32) for v in TOKEN_VERSIONS),
        rewards=np.array(rewards, dtype=np.float32),
        answers=(("\\boxed{2}",), ("cannot tell",)),
        timings=GroupTimings(generate_s=0.5, score_s=0.25, sent_at=100.0),
        counters=ActorCounters(
            groups_generated=9,
            groups_lost=1,
            bad_records=2,
            score_failures=3,
            answers_refused=1,
            empty_captions=2,
            judge_unparsed=3,
            weight_updates=4,
            weight_updates_rejected=0,
            policy_version=5,
        ),
    )


def admission_for_made_groups(images: bool = True, version: int = 10, **bounds) -> GroupAdmission:
    """What `make_group`'s groups pass: 2 completions of at most 8 tokens, ids below 100, rewards
    in [0, 1], versions up to `version`, the tiny PNG (no pad tokens in the prompt for it)."""
    limits = GroupBounds(**{"group_size": 2, "max_completion_tokens": 8, "reward_floor": 0.0, **bounds})
    return GroupAdmission(limits, 100, lambda: version, ImageCheck(99, lambda image: 0) if images else None)


def test_group_round_trip_keeps_every_field():
    group = make_group()
    back = decode_group(encode_group(group))
    assert back.group_id == "g1" and back.prompt_id == "p7" and back.actor_id == 1 and back.prompt_position == 5
    assert back.image_png == group.image_png
    assert [c.tolist() for c in back.completion_ids] == [[10, 11, 12], [10]]
    for got, sent in zip(back.behaviour_logprobs, group.behaviour_logprobs):
        np.testing.assert_array_equal(got, sent)
    assert [v.tolist() for v in back.token_versions] == list(TOKEN_VERSIONS)
    # a sample's version is its oldest token's, the group's its oldest sample's
    assert back.sample_versions.tolist() == [2, 3]
    assert back.policy_version == 2
    assert back.rewards.tolist() == [1.0, 0.0]
    assert back.answers == group.answers
    assert back.timings == group.timings
    assert back.counters == group.counters
    assert back.num_tokens() == 4


def mutate(**changes) -> bytes:
    obj = msgpack.unpackb(encode_group(make_group()), raw=False)
    obj.update(changes)
    return msgpack.packb(obj, use_bin_type=True)


@pytest.mark.parametrize(
    "frame, reason",
    [
        (b"\xc1garbage", "not a msgpack"),
        (msgpack.packb([1, 2, 3]), "must be a msgpack map"),
        (mutate(schema=99), "schema"),
        (mutate(rewards=pack_array(np.array([1.5, 0.0], dtype=np.float32))), "rewards out of range"),
        (mutate(rewards=pack_array(np.array([np.nan, 0.0], dtype=np.float32))), "rewards out of range"),
        (mutate(rewards=pack_array(np.array([1.0], dtype=np.float32))), "rewards has 1 entries for 2"),
        (mutate(lengths=pack_array(np.array([3, 2], dtype=np.int32))), "lengths sum to 5"),
        (mutate(completion_ids=pack_array(np.arange(4, dtype=np.int64))), "dtype 'int64', expected 'int32'"),
        (mutate(behaviour_logprobs={"dtype": "float32", "shape": [4], "data": b"\x00" * 3}), "do not fill shape"),
        (mutate(behaviour_logprobs=pack_array(np.array([0.5, -1, -1, -1], dtype=np.float32))), "<= 0"),
        (mutate(token_versions=pack_array(np.array([2, 3, 3], dtype=np.int32))), "and 3 token versions"),
        (mutate(token_versions=pack_array(np.array([2, -1, 3, 3], dtype=np.int32))), "token versions must be >= 0"),
        (mutate(group_id=5), "group_id"),
        (mutate(prompt_position=-1), "prompt_position must be >= 0"),
        (mutate(answers=[["a"]]), "answers"),
        (mutate(counters=[1, 2, 3]), "counters must be 11 integers"),
        (mutate(counters=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -1]), "counters must be 11 integers >= 0"),
        (mutate(counters=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, True]), "counters must be 11 integers"),
    ],
)
def test_bad_group_frames_are_rejected_with_their_reason(frame, reason):
    with pytest.raises(MalformedMessage, match=reason):
        decode_group(frame)


def test_a_shaped_reward_below_zero_travels():
    # A shaping penalty may take a reward below 0 (a wordy caption that got nothing right).
    back = decode_group(encode_group(make_group(rewards=(-0.25, 1.0))))
    assert back.rewards.tolist() == [-0.25, 1.0]


def test_missing_field_is_named():
    obj = msgpack.unpackb(encode_group(make_group()), raw=False)
    del obj["prompt_id"]
    with pytest.raises(MalformedMessage, match="lacks field 'prompt_id'"):
        decode_group(msgpack.packb(obj, use_bin_type=True))


def test_weight_update_round_trip_is_bit_exact_for_float_and_bf16():
    tensors = {"a.weight": torch.randn(3, 4), "b.bias": torch.randn(5).to(torch.bfloat16)}
    frames = [bytes(f) for f in encode_weight_update(weight_update(7, tensors))]
    update = decode_weight_update(frames)
    assert update.version == 7
    received = dict(named_tensors(update))
    assert torch.equal(received["a.weight"], tensors["a.weight"])
    assert received["b.bias"].dtype == torch.bfloat16
    assert torch.equal(received["b.bias"], tensors["b.bias"])


def test_weight_update_with_a_short_buffer_is_rejected():
    frames = [bytes(f) for f in encode_weight_update(weight_update(1, {"w": torch.zeros(4)}))]
    with pytest.raises(MalformedMessage, match="expected 16"):
        decode_weight_update([frames[0], frames[1][:8]])
    with pytest.raises(MalformedMessage, match="names 1 tensors but 0"):
        decode_weight_update(frames[:1])


@pytest.mark.parametrize(
    "message",
    [
        Hello(actor_id=1, workers=2),
        Join(init_info={"master_address": "127.0.0.1", "master_port": 1234, "rank_offset": 3, "world_size": 5}),
        Round(version=4, names=["a.weight", "b.bias"], dtype_names=["float32", "bfloat16"], shapes=[[3, 4], [5]]),
        Ack(actor_id=0, error="boom"),
    ],
)
def test_broadcast_messages_round_trip(message):
    assert decode_message(encode_message(message)) == message


def _broadcast_frame(**fields) -> bytes:
    return msgpack.packb({"schema": 1, **fields}, use_bin_type=True)


@pytest.mark.parametrize(
    "frame, reason",
    [
        (_broadcast_frame(kind="Shutdown"), "unknown kind"),
        (_broadcast_frame(kind="Hello", actor_id=1), "missing 1 required"),
        (_broadcast_frame(kind="Hello", actor_id="1", workers=1), "'actor_id' has type str"),
        (
            _broadcast_frame(kind="Round", version=1, names=["a"], dtype_names=["float32", "float32"], shapes=[[1]]),
            "differ in length",
        ),
        (
            _broadcast_frame(kind="Round", version=1, names=["a"], dtype_names=["int64"], shapes=[[1]]),
            "dtypes must be among",
        ),
        (_broadcast_frame(kind="Round", version=1, names=["a"], dtype_names=["float32"], shapes=[[-1]]), "sizes >= 0"),
        (_broadcast_frame(kind="Join", init_info=[1]), "'init_info' has type list"),
        (msgpack.packb({"schema": 7, "kind": "Ack", "actor_id": 0, "error": ""}), "another schema"),
    ],
)
def test_bad_broadcast_messages_are_rejected_with_their_reason(frame, reason):
    with pytest.raises(MalformedMessage, match=reason):
        decode_message(frame)
