"""The replay boundary checks meaning, not only form (learner/admission.py, wire/buffers.py): each
class of plausible but wrong group is refused with its reason and counted, and the queue keeps
serving whatever a frame holds."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import msgpack
import numpy as np
import pytest
import zmq

from actors.replay_client import ReplayClient
from learner.admission import GroupAdmission, GroupBounds, ImageCheck, Refused, reward_floor, run_bounds
from learner.replay import ReplayQueue
from supervisor.poison import UNDECODABLE_PNG
from tests.test_messages import TINY_PNG, admission_for_made_groups, make_group
from wire.buffers import BASE_ITEMS, MalformedMessage, excerpt, pack_array, unpack, unpack_array
from wire.scored_group import decode_group, encode_group


def _with_ids(group, first_completion: list[int]):
    ids = (np.array(first_completion, dtype=np.int32), *group.completion_ids[1:])
    lengths = [len(c) for c in ids]
    return replace(
        group,
        completion_ids=ids,
        behaviour_logprobs=tuple(np.full(n, -0.5, dtype=np.float32) for n in lengths),
        token_versions=tuple(np.full(n, 3, dtype=np.int32) for n in lengths),
    )


# (reason, a group made from make_group() with one defect). make_group: 2 completions of 3 and 1
# tokens, ids 10-12, versions 2-3, rewards (1, 0), prompt "p7" of ids 0-4 and no pad token.
POISONED = {
    "group_size": lambda g: replace(
        g,
        completion_ids=g.completion_ids[:1],
        behaviour_logprobs=g.behaviour_logprobs[:1],
        token_versions=g.token_versions[:1],
        rewards=g.rewards[:1],
        answers=g.answers[:1],
    ),
    "unknown_prompt": lambda g: replace(g, prompt_id="p8"),
    "completion_length": lambda g: _with_ids(g, [10] * 9),
    "token_id": lambda g: _with_ids(g, [10, 100]),
    "token_version": lambda g: replace(g, token_versions=(np.array([2, 3, 11], dtype=np.int32), g.token_versions[1])),
    "reward": lambda g: replace(
        g, rewards=np.array([-0.5, 0.0], dtype=np.float32)
    ),  # no shaping term on: the floor is 0
    "image": lambda g: replace(g, image_png=UNDECODABLE_PNG),
}


def _admission(**bounds) -> GroupAdmission:
    return admission_for_made_groups(prompt_ids=frozenset({"p7"}), **bounds)


@pytest.mark.parametrize("reason", sorted(POISONED))
def test_each_class_of_plausible_wrong_group_is_refused_with_its_reason(reason):
    admission = _admission()
    admission.check(make_group())  # the unpoisoned group passes
    # Through the codec first: each defect is well-formed, so decoding alone lets it through.
    poisoned = decode_group(encode_group(POISONED[reason](make_group())))
    with pytest.raises(Refused) as refused:
        admission.check(poisoned)
    assert refused.value.reason == reason


def test_the_images_pad_tokens_must_be_those_its_size_expands_to_and_never_in_a_completion():
    pad = 4  # make_group's prompt holds ids 0-4: one pad token
    one_pad = GroupAdmission(None, 100, lambda: 10, ImageCheck(pad, lambda image: 1))
    one_pad.check(make_group())
    with pytest.raises(Refused, match="holds 1 image pad tokens, the image expands to 2"):
        GroupAdmission(None, 100, lambda: 10, ImageCheck(pad, lambda image: 2)).check(make_group())
    with pytest.raises(Refused, match="a completion holds the image pad token"):
        one_pad.check(_with_ids(make_group(), [10, pad]))


def test_a_token_version_is_checked_against_the_version_published_when_the_group_arrives():
    published = [2]
    admission = GroupAdmission(None, 100, lambda: published[0], None)
    group = replace(make_group(), image_png=b"")  # versions 2 and 3
    with pytest.raises(Refused, match="policy version 3, the learner has published 2"):
        admission.check(group)
    published[0] = 3
    admission.check(group)


def test_the_reward_floor_is_what_every_shaping_term_can_take_off():
    from configs.load import load_config

    # Length: 0.5 x (32 - 8) / 8 = 1.5 at the longest caption (max_new_tokens 32); repetition
    # at most 0.25 (every n-gram repeated); format 0.1: a floor of -1.85.
    config = load_config(
        None,
        [
            "rollout.sampling.max_new_tokens=32",
            "reward.shaping.length_budget=8",
            "reward.shaping.length_penalty=0.5",
            "reward.shaping.repetition_ngram=2",
            "reward.shaping.repetition_penalty=0.25",
            "reward.shaping.format_pattern=.*",
            "reward.shaping.format_penalty=0.1",
        ],
    )
    assert reward_floor(config) == pytest.approx(-1.85)
    assert reward_floor(load_config(None, [])) == 0.0
    bounds = run_bounds(config, ["a", "b"])
    assert (bounds.group_size, bounds.max_completion_tokens, bounds.prompt_ids) == (
        config.rollout.group_size,
        32,
        {"a", "b"},
    )


def test_a_shape_holding_a_boolean_is_malformed_not_a_crash():
    buffer = pack_array(np.arange(4, dtype=np.int32))
    with pytest.raises(MalformedMessage, match="invalid shape"):
        unpack_array({**buffer, "shape": [True, 4]}, "ids", "int32")


def test_a_frame_cannot_decode_to_many_times_its_size():
    # 200 000 empty lists in 100 lists: one byte each on the wire, ~56 bytes each as Python lists.
    nested = msgpack.packb({"x": [[[]] * 2000] * 100})
    with pytest.raises(MalformedMessage, match="holds more than"):
        unpack(nested, "ScoredGroup")
    # A real group is far inside its budget.
    assert unpack(encode_group(make_group()), "ScoredGroup")["prompt_id"] == "p7"
    assert BASE_ITEMS >= 1024


def test_a_peers_text_is_quoted_short_with_control_characters_escaped():
    quoted = excerpt("line\nforged: ok\x1b[31m" + "x" * 500)
    assert "\n" not in quoted and "\x1b" not in quoted and "\\n" in quoted and "\\x1b" in quoted
    assert len(quoted) == 203 and quoted.endswith("...")
    assert excerpt("short") == "short"


def _wait_for(predicate, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_the_queue_refuses_every_poisoned_group_counts_it_by_reason_and_keeps_serving():
    queue = ReplayQueue("127.0.0.1", 0, capacity_groups=16, capacity_bytes=2**20, admission=_admission())
    client = ReplayClient([queue.endpoint])
    raw = zmq.Context.instance().socket(zmq.PUSH)
    raw.connect(queue.endpoint)
    try:
        for position, reason in enumerate(sorted(POISONED)):
            asyncio.run(client.send(replace(POISONED[reason](make_group()), prompt_position=position)))
        raw.send(b"\x81\xa1x\xc0")  # a msgpack map that is no group
        raw.send(msgpack.packb({"x": [[[]] * 2000] * 100}))
        asyncio.run(client.send(make_group(prompt_position=100)))
        assert queue.get(timeout=5).prompt_position == 100
        _wait_for(lambda: queue.counters.rejected == len(POISONED) + 2)
        assert queue.counters.rejected_by_reason == {**dict.fromkeys(POISONED, 1), "malformed": 2}
        assert queue.counters.accepted == 1
    finally:
        raw.close(linger=0)
        client.close()
        queue.close()


def test_whatever_a_check_raises_rejects_that_frame_alone():
    class Broken(GroupAdmission):
        def check(self, group):
            if group.prompt_position == 1:
                raise ZeroDivisionError("a bug in a check")

    queue = ReplayQueue(
        "127.0.0.1", 0, capacity_groups=8, capacity_bytes=2**20, admission=Broken(None, 100, lambda: 10, None)
    )
    client = ReplayClient([queue.endpoint])
    try:
        for position in (1, 2):
            asyncio.run(client.send(make_group(prompt_position=position)))
        assert queue.get(timeout=5).prompt_position == 2
        _wait_for(lambda: queue.counters.rejected == 1)
        assert queue.counters.rejected_by_reason == {"error": 1}
    finally:
        client.close()
        queue.close()


def test_the_byte_bound_counts_what_a_group_holds_decoded():
    from learner.replay import decoded_bytes

    group = make_group()
    # 5 prompt ids and 4 completion ids and versions (int32), 4 logprobs and 2 rewards (float32),
    # the image and the answers' characters.
    expected = 4 * (5 + 4 + 4 + 4 + 2) + len(group.image_png) + len("\\boxed{2}") + len("cannot tell")
    assert decoded_bytes(group) == expected
    assert len(TINY_PNG) < len(group.image_png)


@pytest.mark.parametrize("images", [True, False])
def test_each_soak_poison_group_is_refused_for_its_own_class(images):
    from supervisor.poison import POISON_CLASSES, PoisonSpec, poison_group

    spec = PoisonSpec(group_size=4, max_completion_tokens=8, prompt_id="train-000001")
    bounds = GroupBounds(
        group_size=4, max_completion_tokens=8, reward_floor=-0.5, prompt_ids=frozenset({"train-000001"})
    )
    admission = GroupAdmission(bounds, 1000, lambda: 0, ImageCheck(999, lambda image: 0) if images else None)
    for position, kind in enumerate(POISON_CLASSES):
        with pytest.raises(Refused) as refused:
            admission.check(decode_group(encode_group(poison_group(spec, kind, 10**15 + position))))
        assert refused.value.reason == kind


@pytest.mark.parametrize("tensors", [963, 40_000])  # a 72B dense model's, an MoE model's
def test_weight_headers_of_large_models_decode_within_their_entry_budget(tensors):
    from wire.broadcast import Round, decode_message, encode_message
    from wire.weights import RawTensor, WeightUpdate, decode_weight_update, encode_weight_update

    names = [f"model.layers.{i // 12}.mlp.experts.{i % 12}.down_proj.weight" for i in range(tensors)]
    update = WeightUpdate(7, tuple(RawTensor(n, "bfloat16", (0, 8192), b"") for n in names))
    assert len(decode_weight_update(encode_weight_update(update)).tensors) == tensors
    round_ = Round(version=7, names=names, dtype_names=["bfloat16"] * tensors, shapes=[[8192, 29568]] * tensors)
    assert decode_message(encode_message(round_)).names == names
