"""The actor's end of the replay queue: a ZeroMQ PUSH socket connected to the learner(s).

With several learner ranks the socket connects to each, and ZeroMQ deals groups out among them
round-robin. A send waits (asynchronously) while the learner applies backpressure; the group is
kept until it is handed over, so nothing accepted is lost.
"""

from __future__ import annotations

import zmq
import zmq.asyncio

from transport.curve import CurveKeys
from transport.sockets import connect
from wire.scored_group import ScoredGroup, encode_group

# Groups ZeroMQ may queue on the actor side before a send waits.
SEND_HWM = 2


class ReplayClient:
    def __init__(self, endpoints: list[str], keys: CurveKeys | None = None):
        self._context = zmq.asyncio.Context.instance()
        self._socket = self._context.socket(zmq.PUSH)
        self._socket.setsockopt(zmq.SNDHWM, SEND_HWM)
        self._socket.setsockopt(zmq.LINGER, 2000)
        connect(self._socket, endpoints, keys)

    async def send(self, group: ScoredGroup) -> None:
        await self._socket.send(encode_group(group), copy=False)

    def close(self) -> None:
        self._socket.close()
