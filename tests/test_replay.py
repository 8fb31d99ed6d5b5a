"""The replay queue on real ZeroMQ sockets: delivery, rejection of bad frames, backpressure."""

import asyncio
import time
from dataclasses import replace

import zmq

from actors.replay_client import ReplayClient
from learner.replay import ReplayQueue
from tests.test_messages import admission_for_made_groups, make_group, png_declaring
from wire.scored_group import encode_group


def test_groups_arrive_and_a_malformed_frame_is_counted_not_fatal():
    queue = ReplayQueue("127.0.0.1", 0, capacity_groups=8, capacity_bytes=2**20, admission=admission_for_made_groups())
    try:
        raw = zmq.Context.instance().socket(zmq.PUSH)
        raw.connect(queue.endpoint)
        raw.send(b"not msgpack at all")
        client = ReplayClient([queue.endpoint])
        asyncio.run(client.send(make_group()))
        group = queue.get(timeout=5)
        assert group is not None and group.prompt_id == "p7"
        deadline = time.monotonic() + 5
        while queue.counters.rejected < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert queue.counters.rejected == 1
        assert queue.counters.accepted == 1
        # the receiver survived the bad frame: a later group still arrives
        asyncio.run(client.send(make_group(prompt_position=6)))
        assert queue.get(timeout=5) is not None
        raw.close(linger=0)
        client.close()
    finally:
        queue.close()


def test_a_full_queue_holds_senders_back_instead_of_growing():
    capacity = 2
    queue = ReplayQueue(
        "127.0.0.1", 0, capacity_groups=capacity, capacity_bytes=2**30, admission=admission_for_made_groups()
    )
    client = ReplayClient([queue.endpoint])

    async def send_many(count: int) -> int:
        sent = 0
        for position in range(count):
            try:
                await asyncio.wait_for(
                    client.send(make_group(image_bytes=256 * 1024, prompt_position=position)), timeout=0.5
                )
            except TimeoutError:
                break
            sent += 1
        return sent

    try:
        sent = asyncio.run(send_many(200))
        # The buffer holds `capacity` groups, the receiving thread one it cannot put, ZeroMQ's
        # high-water marks 4 + 2 more, and the kernel's loopback buffers (a few MB) a handful of
        # these 256 KB groups: far fewer than 200.
        assert sent < 50
        assert len(queue) == capacity
        # What waits is visible by version (make_group's oldest token is version 2).
        assert queue.buffered_versions() == [2] * capacity
        # Draining the queue lets the held-back groups through: nothing accepted is lost.
        received = 0
        while queue.get(timeout=1.0) is not None:
            received += 1
        assert received == sent
    finally:
        client.close()
        queue.close()


def test_the_byte_bound_holds_large_groups_back_but_always_lets_one_in():
    group = make_group(image_bytes=100_000)
    frame = len(encode_group(group))
    # Room for two frames but not three; the group bound is far away.
    queue = ReplayQueue(
        "127.0.0.1",
        0,
        capacity_groups=100,
        capacity_bytes=2 * frame + frame // 2,
        admission=admission_for_made_groups(),
    )
    client = ReplayClient([queue.endpoint])
    try:
        for position in range(5):
            asyncio.run(client.send(replace(group, prompt_position=position)))
        deadline = time.monotonic() + 5
        while queue.counters.accepted < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # the receiver would have taken a third by now, were there room
        assert len(queue) == 2 and queue.buffered_bytes == 2 * frame
        received = sum(queue.get(timeout=2.0) is not None for _ in range(5))
        assert received == 5 and queue.buffered_bytes == 0
    finally:
        client.close()
        queue.close()
    # A single group larger than the whole bound still gets through (else the run would stall).
    queue = ReplayQueue(
        "127.0.0.1", 0, capacity_groups=4, capacity_bytes=frame // 2, admission=admission_for_made_groups()
    )
    client = ReplayClient([queue.endpoint])
    try:
        asyncio.run(client.send(group))
        assert queue.get(timeout=5) is not None
    finally:
        client.close()
        queue.close()


def test_a_group_arriving_twice_is_dropped_and_counted():
    # The same actor's same prompt position twice (a restarted actor regenerating a group that
    # was still on its way): the first is kept, the second dropped; the positions are recorded.
    queue = ReplayQueue("127.0.0.1", 0, capacity_groups=8, capacity_bytes=2**20, admission=admission_for_made_groups())
    client = ReplayClient([queue.endpoint])
    try:
        for position in (0, 1, 1, 3):
            asyncio.run(client.send(make_group(prompt_position=position)))
        deadline = time.monotonic() + 5
        while queue.counters.accepted + queue.counters.duplicates < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (queue.counters.accepted, queue.counters.duplicates) == (3, 1)
        assert [queue.get(timeout=1).prompt_position for _ in range(3)] == [0, 1, 3]
        assert queue.received(actor_id=1).ranges == [(0, 2), (3, 4)]  # make_group's actor is 1
        assert queue.received(actor_id=0).ranges == []
    finally:
        client.close()
        queue.close()


def test_a_group_whose_image_is_corrupt_or_a_bomb_is_refused_with_its_reason():
    # The learner would decode these for the update; the queue refuses them first, and goes on.
    good = make_group(prompt_position=0)
    broken = bytearray(good.image_png)
    broken[20] ^= 0xFF  # inside the header chunk: its checksum no longer holds
    queue = ReplayQueue("127.0.0.1", 0, capacity_groups=8, capacity_bytes=2**20, admission=admission_for_made_groups())
    client = ReplayClient([queue.endpoint])
    try:
        for position, image in enumerate((bytes(broken), png_declaring(20_000, 20_000), good.image_png), start=1):
            asyncio.run(client.send(replace(good, prompt_position=position, image_png=image)))
        assert queue.get(timeout=5).prompt_position == 3
        assert (queue.counters.rejected, queue.counters.accepted) == (2, 1)
    finally:
        client.close()
        queue.close()


def test_a_text_policys_queue_takes_groups_without_an_image_and_refuses_one_with():
    # policy.role=reasoner: the reasoner reads text only, so its groups carry no image.
    image = make_group().image_png
    queue = ReplayQueue(
        "127.0.0.1", 0, capacity_groups=8, capacity_bytes=2**20, admission=admission_for_made_groups(images=False)
    )
    client = ReplayClient([queue.endpoint])
    try:
        for position, png in enumerate((image, b""), start=1):
            asyncio.run(client.send(replace(make_group(prompt_position=position), image_png=png)))
        assert queue.get(timeout=5).prompt_position == 2
        assert (queue.counters.rejected, queue.counters.accepted) == (1, 1)
    finally:
        client.close()
        queue.close()
