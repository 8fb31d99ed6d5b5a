"""The learner's replay queue: a bounded buffer of ScoredGroups fed by a ZeroMQ PULL socket.

Actors connect PUSH sockets to it. Backpressure instead of unbounded memory: when the buffer holds
`capacity_groups` groups or `capacity_bytes` bytes of frames, the receiving thread stops reading,
ZeroMQ's small high-water marks fill, and the actors' sends wait. A frame that fails to decode, or
decodes to a group the run cannot use (learner/admission.py), is logged with its reason (at most
~200 characters of the sender's data, control characters escaped) and counted by reason; no frame
stops the receiver: whatever one raises rejects that frame alone. Every group's prompt position
(wire/progress.py) is recorded per actor as it arrives, so a group that arrives twice is dropped
and counted, and a restarted actor can be told which of its prompts already arrived.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import zmq

from learner.admission import GroupAdmission, Refused
from transport.curve import CurveKeys
from transport.sockets import bind
from wire.buffers import MalformedMessage, excerpt
from wire.progress import ShardProgress
from wire.scored_group import ScoredGroup, decode_group

log = logging.getLogger(__name__)

# Frames ZeroMQ itself may queue on the learner side; small so memory stays bounded by capacity.
RECEIVE_HWM = 4


@dataclass
class ReplayCounters:
    accepted: int = 0  # groups decoded and buffered
    rejected: int = 0  # frames refused (each logged with its reason)
    duplicates: int = 0  # groups of a prompt position that had already arrived, dropped
    rejected_by_reason: dict[str, int] = field(default_factory=dict)  # `rejected`, by reason


def decoded_bytes(group: ScoredGroup) -> int:
    """What a buffered group holds in memory: its arrays, image and answers."""
    arrays = [
        group.prompt_token_ids,
        group.rewards,
        *group.completion_ids,
        *group.behaviour_logprobs,
        *group.token_versions,
    ]
    return (
        sum(a.nbytes for a in arrays) + len(group.image_png) + sum(len(s) for answers in group.answers for s in answers)
    )


class ReplayQueue:
    """Binds `tcp://host:port` (port 0 = a free one) and buffers up to `capacity_groups` groups
    and `capacity_bytes` bytes (the larger of each group's frame and decoded size; one group is
    always let in, however large)."""

    def __init__(
        self,
        host: str,
        port: int,
        capacity_groups: int,
        capacity_bytes: int,
        admission: GroupAdmission,
        max_frame_bytes: int = 64 * 2**20,
        keys: CurveKeys | None = None,
    ):
        """`admission` checks what each decoded group means for the run."""
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.PULL)
        self._socket.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
        self._socket.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes)
        self._socket.setsockopt(zmq.LINGER, 0)
        self.endpoint = bind(self._socket, host, port, keys)
        self.capacity_groups, self.capacity_bytes = capacity_groups, capacity_bytes
        self.admission = admission
        self._buffer: deque[tuple[ScoredGroup, int]] = deque()
        self._bytes = 0
        self._changed = threading.Condition()
        self.counters = ReplayCounters()
        self._received: dict[int, ShardProgress] = {}  # actor id -> positions arrived
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._receive_loop, name="replay-receiver", daemon=True)
        self._thread.start()

    def _receive_loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        while not self._stopping.is_set():
            if not poller.poll(timeout=100):
                continue
            # Take every frame waiting before polling again; decode straight from ZeroMQ's buffer.
            while not self._stopping.is_set():
                try:
                    frame = self._socket.recv(flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                self._take(frame.buffer)

    def _take(self, frame: memoryview) -> None:
        try:
            group = decode_group(frame)  # copies only what it keeps
            self.admission.check(group)
        except Exception as err:  # any frame, however it fails, is that frame's problem alone
            reason = (
                err.reason
                if isinstance(err, Refused)
                else "malformed"
                if isinstance(err, MalformedMessage)
                else "error"
            )
            self._reject(len(frame), reason, err)
            return
        with self._changed:
            first = self._received.setdefault(group.actor_id, ShardProgress()).add(group.prompt_position)
            if not first:
                self.counters.duplicates += 1
        if not first:
            log.warning(
                "replay queue dropped a duplicate: actor %d's prompt position %d (%s) had arrived before",
                group.actor_id,
                group.prompt_position,
                excerpt(group.prompt_id),
            )
            return
        self._put(group, max(len(frame), decoded_bytes(group)))

    def _reject(self, nbytes: int, reason: str, err: Exception) -> None:
        with self._changed:
            self.counters.rejected += 1
            self.counters.rejected_by_reason[reason] = self.counters.rejected_by_reason.get(reason, 0) + 1
        what = str(err) if isinstance(err, MalformedMessage) else f"{type(err).__name__}: {err}"
        log.warning("replay queue rejected a frame (%d bytes, %s): %s", nbytes, reason, excerpt(what, 300))

    def counters_snapshot(self) -> dict:
        """The counters as a plain dict, taken under the lock (the receiver thread adds reasons)."""
        with self._changed:
            return {**vars(self.counters), "rejected_by_reason": dict(self.counters.rejected_by_reason)}

    def received(self, actor_id: int) -> ShardProgress:
        """The prompt positions that have arrived from `actor_id` (a copy)."""
        with self._changed:
            return ShardProgress(list(self._received.get(actor_id, ShardProgress()).ranges))

    def resume_from(self, received: dict[int, ShardProgress]) -> None:
        """A resumed run's queue: what arrived before the crash counts as arrived."""
        with self._changed:
            self._received = {actor: ShardProgress(list(p.ranges)) for actor, p in received.items()}

    def _full(self, nbytes: int) -> bool:
        if not self._buffer:
            return False
        return len(self._buffer) >= self.capacity_groups or self._bytes + nbytes > self.capacity_bytes

    def _put(self, group: ScoredGroup, nbytes: int) -> None:
        # Blocking here is the backpressure: while the buffer is full nothing more is read.
        with self._changed:
            while self._full(nbytes):
                if self._stopping.is_set():
                    return
                self._changed.wait(timeout=0.1)
            self._buffer.append((group, nbytes))
            self._bytes += nbytes
            self.counters.accepted += 1
            self._changed.notify_all()

    def get(self, timeout: float) -> ScoredGroup | None:
        """The oldest buffered group, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(timeout=left)
            group, nbytes = self._buffer.popleft()
            self._bytes -= nbytes
            self._changed.notify_all()
            return group

    def __len__(self) -> int:
        return len(self._buffer)

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    def buffered_versions(self) -> list[int]:
        """The policy versions (oldest token) of the groups waiting now, oldest arrival first."""
        with self._changed:
            return [group.policy_version for group, _ in self._buffer]

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._socket.close(linger=0)
