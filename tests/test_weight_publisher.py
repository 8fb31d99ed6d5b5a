"""The ZeroMQ weight publisher: every version to every actor, and the newest again to an actor
that joins, to that actor alone."""

from __future__ import annotations

import time

import torch

from actors.weight_receiver import ZmqWeightReceiver
from learner.weight_publisher import ZmqWeightPublisher


def _poll_until(receiver: ZmqWeightReceiver, seconds: float = 5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        update = receiver.poll()
        if update is not None:
            return update
        time.sleep(0.01)
    return None


def test_a_joining_actor_gets_the_newest_weights_and_the_others_get_nothing_again():
    publisher = ZmqWeightPublisher("127.0.0.1", 0)
    first = ZmqWeightReceiver(publisher.source().endpoints)
    try:
        time.sleep(0.3)  # the subscription reaches the publisher (a slow joiner misses the publish)
        publisher.publish(1, {"w": torch.ones(3)})
        got = _poll_until(first)
        assert got is not None and got.version == 1
        second = ZmqWeightReceiver(publisher.source().endpoints)
        try:
            caught_up = _poll_until(second)
            assert caught_up is not None and caught_up.version == 1
            # The first actor gets no second copy of version 1 (a second of waiting; it came at once to the joiner).
            assert _poll_until(first, seconds=1.0) is None
            publisher.publish(2, {"w": torch.zeros(3)})
            assert _poll_until(first).version == 2 and _poll_until(second).version == 2
        finally:
            second.close()
    finally:
        first.close()
        publisher.close()
