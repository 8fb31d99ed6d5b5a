"""Publishing new policy versions to the actors, without waiting for them.

`WeightPublisher` is the one interface the learner talks to; the actors' matching end is
`actors.weight_receiver`. The ZeroMQ implementation sends raw tensor buffers over a PUB socket:
a slow actor misses intermediate versions rather than holding the learner back (each update is
a full snapshot, so only the newest matters). It keeps the newest update and sends it to each
actor that subscribes (ZeroMQ's XPUB reports each subscription), under a topic only that actor
subscribed to (`wire.weights.CATCH_UP_PREFIX`), so an actor restarted after a death, or started
by a resumed run, gets the current weights without waiting for a step, and the other actors do
not get them again. The broadcast implementation (NCCL into vLLM
engines on GPUs, gloo on CPUs) is `learner.weight_broadcast`.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod

import torch
import zmq

from transport.curve import CurveKeys
from transport.sockets import bind
from wire.weights import (
    CATCH_UP_PREFIX,
    UPDATE_TOPIC,
    WEIGHT_DTYPES,
    RawTensor,
    WeightSource,
    WeightUpdate,
    encode_weight_update,
)

# Updates ZeroMQ may queue per subscriber; receivers drain continuously, so a few suffice.
PUBLISH_HWM = 4


class WeightPublisher(ABC):
    @abstractmethod
    def source(self) -> WeightSource:
        """What an actor needs to receive this publisher's updates."""

    @abstractmethod
    def publish(self, version: int, tensors: dict[str, torch.Tensor]) -> None:
        """Send `tensors` as policy `version` to every actor; returns without waiting for them."""

    @abstractmethod
    def close(self) -> None: ...


class ZmqWeightPublisher(WeightPublisher):
    """One thread owns the socket (ZeroMQ sockets are not thread-safe): it sends what `publish`
    hands it, and answers each new subscription with the newest update."""

    def __init__(self, host: str, port: int, keys: CurveKeys | None = None):
        self._socket = zmq.Context.instance().socket(zmq.XPUB)
        self._socket.setsockopt(zmq.SNDHWM, PUBLISH_HWM)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscriber's subscription, not only the first
        self._endpoint = bind(self._socket, host, port, keys)
        self._outbox: queue.Queue = queue.Queue()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="weight-publisher", daemon=True)
        self._thread.start()

    def source(self) -> WeightSource:
        return WeightSource(backend="zmq", endpoints=(self._endpoint,))

    def publish(self, version: int, tensors: dict[str, torch.Tensor]) -> None:
        # The frames view the tensors' memory: `tensors` must be the caller's copies, which the
        # learner's gathered weights are, not the live parameters.
        self._outbox.put(encode_weight_update(weight_update(version, tensors)))

    def _serve(self) -> None:
        latest = None
        while not self._closing.is_set():
            try:
                latest = self._outbox.get(timeout=0.02)
                self._socket.send_multipart([UPDATE_TOPIC, *latest], copy=False)
            except queue.Empty:
                pass
            while self._socket.poll(0, zmq.POLLIN):
                subscription = self._socket.recv()
                # b"\x01" + topic: a subscriber joined; its catch-up topic is its alone.
                if subscription.startswith(b"\x01" + CATCH_UP_PREFIX) and latest is not None:
                    self._socket.send_multipart([subscription[1:], *latest], copy=False)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=5)
        self._socket.close(linger=0)


def wire_dtype(name: str, tensor: torch.Tensor) -> str:
    """The name `tensor`'s dtype travels under, if it may travel as a weight at all."""
    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype not in WEIGHT_DTYPES:
        raise TypeError(f"{name}: dtype {dtype} cannot travel as a weight (allowed: {sorted(WEIGHT_DTYPES)})")
    return dtype


def weight_update(version: int, tensors: dict[str, torch.Tensor]) -> WeightUpdate:
    """`tensors` as policy `version`, their bytes viewed in place (CPU tensors) or copied to the CPU."""
    raw = []
    for name, tensor in tensors.items():
        dtype = wire_dtype(name, tensor)
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        raw.append(RawTensor(name, dtype, tuple(tensor.shape), memoryview(flat.view(torch.uint8).numpy())))
    return WeightUpdate(version=version, tensors=tuple(raw))
