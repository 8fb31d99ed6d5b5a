"""Property-based fuzzing of every boundary a peer or a client writes to (Hypothesis).

Two kinds of input per boundary: arbitrary bytes and msgpack/JSON structures (each must be
refused with the boundary's own error, never another exception), and structurally valid
messages with one semantic defect (each must be refused with a reason by the check behind the
decoder). A last test feeds a live replay queue a generated stream of both and checks that it
still takes a good group afterwards.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import msgpack
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.replay_client import ReplayClient
from actors.weight_checks import MAX_VERSION, check_weight_update
from learner.admission import Refused
from learner.replay import ReplayQueue
from learner.weight_publisher import weight_update
from serve.api_protocol import ApiError, parse_chat_request
from tests.test_admission import POISONED, UNDECODABLE_PNG, _admission
from tests.test_messages import make_group
from wire.broadcast import decode_message
from wire.buffers import MalformedMessage, pack_array
from wire.scored_group import decode_group, encode_group
from wire.scoring import score_request_from_json
from wire.weights import decode_weight_update

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# msgpack-encodable values, nested: what a buggy or hostile peer can put in a frame.
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=40)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
# A typed buffer whose fields are any of those values, or near-valid ones.
BUFFERS = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["int32", "float32", "bool", "object", "int64"]) | VALUES,
        "shape": st.lists(st.integers(-2, 5) | st.booleans(), max_size=3) | VALUES,
        "data": st.binary(max_size=64) | VALUES,
    }
)


def _valid_fields() -> dict:
    return msgpack.unpackb(encode_group(make_group()), raw=False)


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_malformed_at_every_decoder(frame):
    for decode in (decode_group, decode_message, lambda f: decode_weight_update([f])):
        with pytest.raises(MalformedMessage):
            decode(frame)


@FUZZ
@given(st.sampled_from(sorted(_valid_fields())), VALUES | BUFFERS)
def test_a_group_with_one_field_replaced_is_malformed_refused_or_fine(field, value):
    fields = _valid_fields()
    fields[field] = value
    try:
        group = decode_group(msgpack.packb(fields, use_bin_type=True))
    except MalformedMessage:
        return
    try:
        _admission().check(group)
    except Refused:
        pass  # any other exception fails the test: the queue would count it, but as a bug


@FUZZ
@given(st.sampled_from(sorted(POISONED)), st.data())
def test_a_well_formed_group_with_a_semantic_defect_is_refused_with_its_reason(reason, data):
    group = make_group(prompt_position=data.draw(st.integers(0, 2**40)))
    defect = {
        "token_id": lambda: replace(
            group, prompt_token_ids=np.array([0, data.draw(st.integers(100, 2**31 - 1))], dtype=np.int32)
        ),
        "token_version": lambda: replace(
            group,
            token_versions=(
                np.array([2, 3, data.draw(st.integers(11, 2**31 - 1))], dtype=np.int32),
                group.token_versions[1],
            ),
        ),
        "reward": lambda: replace(group, rewards=np.array([data.draw(st.floats(-1e30, -1e-3)), 0.0], dtype=np.float32)),
        "unknown_prompt": lambda: replace(
            group, prompt_id=data.draw(st.text(min_size=1, max_size=30).filter(lambda s: s != "p7"))
        ),
        "image": lambda: replace(
            group,
            image_png=data.draw(
                st.sampled_from([UNDECODABLE_PNG, b"\x89PNG\r\n\x1a\n" + data.draw(st.binary(max_size=60))])
            ),
        ),
    }.get(reason, lambda: POISONED[reason](group))()
    sent = decode_group(encode_group(defect))  # well-formed: the codec lets it through
    with pytest.raises(Refused) as refused:
        _admission().check(sent)
    assert refused.value.reason == reason


@FUZZ
@given(VALUES)
def test_any_control_structure_is_a_control_message_or_malformed(value):
    frame = msgpack.packb(
        {"schema": 1, "kind": "Hello", "actor_id": value, "workers": 1} if isinstance(value, int) else value,
        use_bin_type=True,
    )
    try:
        decode_message(frame)
    except MalformedMessage:
        pass


SHAPES = {"w": (3, 4), "b": (4,)}


@FUZZ
@given(st.data())
def test_a_well_formed_weight_update_that_does_not_fit_the_policy_is_refused(data):
    name = data.draw(st.sampled_from(["w", "b", "other", ""]))
    shape = tuple(data.draw(st.lists(st.integers(0, 5), min_size=1, max_size=3)))
    values = torch.full(shape, data.draw(st.sampled_from([0.5, float("nan"), float("inf")])))
    version = data.draw(st.integers(-5, 2**40))
    update = decode_weight_update([bytes(f) for f in _frames(weight_update(version, {name: values}))])
    fits = (
        name in SHAPES and shape == SHAPES[name] and bool(torch.isfinite(values).all()) and 1 < version <= MAX_VERSION
    )
    if fits:
        check_weight_update(update, SHAPES, current_version=1)
    else:
        with pytest.raises(MalformedMessage):
            check_weight_update(update, SHAPES, current_version=1)


def _frames(update):
    from wire.weights import encode_weight_update

    return encode_weight_update(update)


@FUZZ
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(["question", "answer", "captions", "caption_tokens", "seed", "model", "messages", "x"]),
                inner,
                max_size=6,
            )
        ),
        max_leaves=25,
    )
)
def test_any_json_body_is_a_request_or_a_400(body):
    raw = json.dumps(body).encode()
    try:
        score_request_from_json(json.loads(raw))
    except ValueError:
        pass
    try:
        parse_chat_request(raw)
    except ApiError as err:
        assert err.status == 400


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.binary(max_size=120) | st.sampled_from(sorted(POISONED)), min_size=5, max_size=25))
def test_a_live_queue_fed_a_fuzzed_stream_still_takes_a_good_group(stream):
    queue = ReplayQueue("127.0.0.1", 0, capacity_groups=64, capacity_bytes=2**22, admission=_admission())
    client = ReplayClient([queue.endpoint])
    try:
        for position, item in enumerate(stream):
            if isinstance(item, str):
                asyncio.run(client.send(replace(POISONED[item](make_group()), prompt_position=position)))
            else:
                _send_raw(queue.endpoint, item)
        asyncio.run(client.send(make_group(prompt_position=10_000)))
        assert queue.get(timeout=10).prompt_position == 10_000
        deadline = time.monotonic() + 5
        while queue.counters.rejected < len(stream) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert queue.counters.rejected == len(stream) and queue.counters.accepted == 1
    finally:
        client.close()
        queue.close()


def _send_raw(endpoint: str, frame: bytes) -> None:
    import zmq

    socket = zmq.Context.instance().socket(zmq.PUSH)
    socket.setsockopt(zmq.LINGER, 2000)
    socket.connect(endpoint)
    socket.send(frame)
    socket.close()


def test_typed_buffers_with_any_fields_are_malformed_or_arrays():
    # Deterministic corner cases the strategies above reach only by luck.
    for shape in ([True], [-1], [2**62, 2**62], [1.5]):
        fields = _valid_fields()
        fields["rewards"] = {**pack_array(np.zeros(2, dtype=np.float32)), "shape": shape}
        with pytest.raises(MalformedMessage):
            decode_group(msgpack.packb(fields, use_bin_type=True))
