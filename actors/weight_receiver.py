"""The actor's end of weight sync: receive new policy versions without blocking generation."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod

import zmq

from actors.weight_update import WeightSource, WeightUpdate, decode_weight_update
from wire.buffers import MalformedMessage

log = logging.getLogger(__name__)

RECEIVE_HWM = 4


class WeightReceiver(ABC):
    @abstractmethod
    def poll(self) -> WeightUpdate | None:
        """The newest update that arrived since the last poll, or None; never blocks."""

    @abstractmethod
    def close(self) -> None: ...


class ZmqWeightReceiver(WeightReceiver):
    def __init__(self, endpoints: tuple[str, ...]):
        self._socket = zmq.Context.instance().socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        for endpoint in endpoints:
            self._socket.connect(endpoint)
        self.rejected = 0

    def poll(self) -> WeightUpdate | None:
        newest = None
        while True:
            try:
                frames = self._socket.recv_multipart(flags=zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return newest
            try:
                update = decode_weight_update(frames)
            except MalformedMessage as err:
                self.rejected += 1
                log.warning("ignored a malformed weight update: %s", err)
                continue
            if newest is None or update.version > newest.version:
                newest = update

    def close(self) -> None:
        self._socket.close(linger=0)


def make_receiver(source: WeightSource) -> WeightReceiver:
    if source.backend == "zmq":
        return ZmqWeightReceiver(source.endpoints)
    raise ValueError(f"unknown weight sync backend {source.backend!r}")
