"""The actor's end of weight sync: receive new policy versions without blocking generation.

- "zmq": `ZmqWeightReceiver` takes the published frames; the actor swaps them in.
- "gloo" / "nccl": `BroadcastWeightReceiver` answers learner rank 0's control messages
  (`wire.broadcast`) by driving the vLLM engine through the broadcast.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

import zmq
import zmq.asyncio

from actors.weight_checks import check_announced
from transport.curve import CurveKeys
from transport.sockets import connect
from wire.broadcast import Ack, Hello, Join, Round, decode_message, encode_message
from wire.buffers import MalformedMessage, excerpt
from wire.weights import CATCH_UP_PREFIX, UPDATE_TOPIC, WeightUpdate, decode_weight_update

log = logging.getLogger(__name__)

RECEIVE_HWM = 4


class ZmqWeightReceiver:
    def __init__(self, endpoints: tuple[str, ...], keys: CurveKeys | None = None):
        self._socket = zmq.Context.instance().socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
        self._socket.setsockopt(zmq.LINGER, 0)
        # Every published version, and the newest one again on joining, under a topic of its own.
        self._socket.setsockopt(zmq.SUBSCRIBE, UPDATE_TOPIC)
        self._socket.setsockopt(zmq.SUBSCRIBE, CATCH_UP_PREFIX + secrets.token_hex(16).encode())
        connect(self._socket, endpoints, keys)
        self.rejected = 0  # malformed updates ignored

    def poll(self) -> WeightUpdate | None:
        """The newest update that arrived since the last poll, or None; never blocks."""
        newest = None
        while True:
            try:
                frames = self._socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return newest
            try:
                # Views of ZeroMQ's buffers: the engine's load makes the one copy it needs.
                update = decode_weight_update([frame.buffer for frame in frames[1:]])  # after the topic
            except Exception as err:  # any frame, however it fails, is that update's problem alone
                self.rejected += 1
                what = str(err) if isinstance(err, MalformedMessage) else f"{type(err).__name__}: {err}"
                log.warning("ignored a malformed weight update: %s", excerpt(what, 300))
                continue
            if newest is None or update.version > newest.version:
                newest = update

    def close(self) -> None:
        self._socket.close(linger=0)


class BroadcastWeightReceiver:
    def __init__(self, endpoint: str, actor_id: int, keys: CurveKeys | None = None, shapes: dict | None = None):
        """`shapes`: the policy's parameter shapes (actors/weight_checks.py), which every Round's
        names and shapes must match before its tensors are received (None: unchecked)."""
        self.shapes = shapes
        self._socket = zmq.asyncio.Context.instance().socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        connect(self._socket, [endpoint], keys)
        self.actor_id = actor_id
        self.rejected = 0  # updates that failed here (each also fails the learner's publish)

    async def serve(self, engine, on_update: Callable[[int], None]) -> None:
        """Join the learner's group with `engine` (a vLLM caption engine) and receive every
        broadcast into it, calling `on_update(version)` after each; runs until cancelled."""
        await self._socket.send(encode_message(Hello(actor_id=self.actor_id, workers=engine.workers)))
        while True:
            frame = await self._socket.recv()
            error = ""
            try:
                message = decode_message(frame)
                if isinstance(message, Join):
                    await engine.join_weight_broadcast(message.init_info)
                elif isinstance(message, Round):
                    if self.shapes is not None:  # refused: the Ack says why and the learner's publish fails
                        check_announced(
                            message.version,
                            list(zip(message.names, message.shapes)),
                            self.shapes,
                            engine.policy_version,
                        )
                    await engine.receive_weight_broadcast(message)
                    on_update(message.version)
                else:
                    raise MalformedMessage(f"an actor takes Join and Round messages, not {type(message).__name__}")
            except Exception as err:  # noqa: BLE001 - reported to the learner, which stops the run
                error = f"{type(err).__name__}: {err}"
                self.rejected += 1
                log.error("weight broadcast failed on actor %d: %s", self.actor_id, error)
            await self._socket.send(encode_message(Ack(actor_id=self.actor_id, error=error)))

    def close(self) -> None:
        self._socket.close(linger=0)
