"""The learner's replay queue: a bounded buffer of ScoredGroups fed by a ZeroMQ PULL socket.

Actors connect PUSH sockets to it. Backpressure instead of unbounded memory: when the buffer
holds `capacity` groups, the receiving thread stops reading, ZeroMQ's small high-water marks
fill, and the actors' sends wait. A frame that fails to decode is logged with its reason and
counted; it never stops the receiver.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

import zmq

from wire.buffers import MalformedMessage
from wire.scored_group import ScoredGroup, decode_group
from wire.sockets import bind

log = logging.getLogger(__name__)

# Frames ZeroMQ itself may queue on the learner side; small so memory stays bounded by capacity.
RECEIVE_HWM = 4


@dataclass
class ReplayCounters:
    accepted: int = 0  # groups decoded and buffered
    rejected: int = 0  # malformed frames (each logged with its reason)


class ReplayQueue:
    """Binds `tcp://host:port` (port 0 = a free one) and buffers up to `capacity` groups."""

    def __init__(self, host: str, port: int, capacity: int):
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.PULL)
        self._socket.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
        self._socket.setsockopt(zmq.LINGER, 0)
        self.endpoint = bind(self._socket, host, port)
        self._buffer: queue.Queue[ScoredGroup] = queue.Queue(maxsize=capacity)
        self.counters = ReplayCounters()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._receive_loop, name="replay-receiver", daemon=True)
        self._thread.start()

    def _receive_loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        while not self._stopping.is_set():
            if not poller.poll(timeout=100):
                continue
            frame = self._socket.recv(copy=True)
            try:
                group = decode_group(frame)
            except MalformedMessage as err:
                self.counters.rejected += 1
                log.warning("replay queue rejected a frame (%d bytes): %s", len(frame), err)
                continue
            self._put(group)

    def _put(self, group: ScoredGroup) -> None:
        # Blocking here is the backpressure: while the buffer is full nothing more is read.
        while not self._stopping.is_set():
            try:
                self._buffer.put(group, timeout=0.1)
                self.counters.accepted += 1
                return
            except queue.Full:
                continue

    def get(self, timeout: float) -> ScoredGroup | None:
        """The oldest buffered group, or None after `timeout` seconds."""
        try:
            return self._buffer.get(timeout=timeout)
        except queue.Empty:
            return None

    def __len__(self) -> int:
        return self._buffer.qsize()

    def buffered_versions(self) -> list[int]:
        """The policy versions (oldest token) of the groups waiting now, oldest arrival first."""
        with self._buffer.mutex:
            return [group.policy_version for group in self._buffer.queue]

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._socket.close(linger=0)
