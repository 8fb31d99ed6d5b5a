"""Broadcast weight sync: learner rank 0 broadcasts each new policy straight into every vLLM engine.

This is the GPU clusters' path ("nccl": vLLM's NCCL weight-transfer backend on the engines, a
NCCL communicator here), with "gloo" as its CPU twin (`actors.vllm_weights`) so that the whole
protocol runs, and is tested, without a GPU. One group holds rank 0 (here) and every worker of
every actor's engine; small msgpack control messages over ZeroMQ (`wire.broadcast`)
say who is in it and what is about to be broadcast:
1. each actor says Hello once its engine is up; when all `receivers` have, rank 0 hands each
   its place (Join) and joins the group itself; the members meet at once.
2. each publish sends a Round (version, names, dtypes, shapes) to every actor, broadcasts the
   tensors in that order, and waits for every actor's Ack: the engines pause in place, load
   layer-wise, and resume, tagging later tokens with the new version.
Unlike the ZeroMQ publisher, a publish waits for the actors (a collective needs them all), and
the group is fixed: an actor that dies cannot rejoin it; the publish then fails naming it.
The control socket takes messages from the run's actors only (ids 0 to `receivers` - 1, each
from the socket it said Hello from): a frame that does not decode, a Hello from another id or
a second socket, an Ack from a socket that never said Hello, is skipped, counted (`rejected`)
and logged, and the wait goes on.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Protocol

import torch
import zmq

from learner.weight_publisher import WeightPublisher, wire_dtype
from transport.curve import CurveKeys
from transport.gloo import GlooGroup, listening_socket
from transport.sockets import advertised_host, bind
from wire.broadcast import Ack, Hello, Join, Round, decode_message, encode_message
from wire.buffers import MalformedMessage, excerpt
from wire.weights import WeightSource

log = logging.getLogger(__name__)

BACKENDS = ("gloo", "nccl")
# How often a wait for the actors checks whether the publisher is closing.
_POLL_S = 0.2


class TrainerGroup(Protocol):
    def broadcast(self, tensor: torch.Tensor) -> None: ...

    def finish(self) -> None:
        """Return once every broadcast so far has left this process."""


class BroadcastWeightPublisher(WeightPublisher):
    def __init__(
        self, backend: str, host: str, port: int, receivers: int, timeout_s: float, keys: CurveKeys | None = None
    ):
        if backend not in BACKENDS:
            raise ValueError(f"broadcast weight sync backend must be one of {BACKENDS}, got {backend!r}")
        self._backend, self._host, self._timeout_s = backend, host, timeout_s
        self._socket = zmq.Context.instance().socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._endpoint = bind(self._socket, host, port, keys)
        self._receivers: dict[bytes, Hello] = {}
        self._expected_ids = frozenset(range(receivers))
        self.rejected = 0  # control frames skipped (see the module doc)
        # The actors come up after the learner: the group forms in the background meanwhile
        # (a daemon thread: a run that ends first must not wait for actors that never came).
        self._closing = threading.Event()
        self._formed: Future = Future()
        self._forming = threading.Thread(target=self._form_group_in_background, args=(receivers,), daemon=True)
        self._forming.start()

    def source(self) -> WeightSource:
        return WeightSource(backend=self._backend, endpoints=(self._endpoint,))

    def publish(self, version: int, tensors: dict[str, torch.Tensor]) -> None:
        group = self._group()
        round_ = Round(
            version=version,
            names=list(tensors),
            dtype_names=[wire_dtype(name, t) for name, t in tensors.items()],
            shapes=[list(t.shape) for t in tensors.values()],
        )
        for identity in self._receivers:
            self._socket.send_multipart([identity, encode_message(round_)])
        for tensor in tensors.values():
            group.broadcast(tensor)
        group.finish()
        self._await_acks()

    def _group(self) -> TrainerGroup:
        """The group, once formed; raises what went wrong forming it."""
        # Each step of forming has its own deadline and says which failed; this one is the
        # backstop for a collective that never returns (a NCCL init missing a member).
        if not wait([self._formed], timeout=2 * self._timeout_s).done:
            raise TimeoutError(f"weight broadcast: the group did not form within {2 * self._timeout_s}s")
        return self._formed.result()

    def close(self) -> None:
        self._closing.set()
        self._forming.join()  # the socket belongs to that thread until it ends
        self._socket.close(linger=0)

    def _form_group_in_background(self, receivers: int) -> None:
        try:
            self._formed.set_result(self._form_group(receivers))
        except BaseException as err:  # noqa: BLE001 - handed to the publish that needs the group
            self._formed.set_exception(err)

    def _form_group(self, receivers: int) -> TrainerGroup:
        deadline = time.monotonic() + self._timeout_s  # for the whole wait: skipped frames do not extend it
        while len(self._receivers) < receivers:
            identity, message = self._receive(
                f"{receivers - len(self._receivers)} of {receivers} actors to say Hello", deadline
            )
            if isinstance(message, Hello):
                self._receivers[identity] = message
            elif message is not None:
                self._skip(f"a {type(message).__name__} before the group formed")
        world_size = 1 + sum(hello.workers for hello in self._receivers.values())
        shared, join_rank0 = self._rendezvous(world_size)
        offset = 1
        for identity, hello in sorted(self._receivers.items(), key=lambda item: item[1].actor_id):
            init_info = {**shared, "rank_offset": offset, "world_size": world_size}
            self._socket.send_multipart([identity, encode_message(Join(init_info=init_info))])
            offset += hello.workers
        joined = self._join_watching_acks(join_rank0)
        self._await_acks(already=joined.acked)
        return joined.group

    def _rendezvous(self, world_size: int):
        """(what every member's init info shares, how rank 0 joins)."""
        if self._backend == "gloo":
            listener = listening_socket(self._host)  # the store listens on the configured host only
            port = listener.getsockname()[1]
            address = advertised_host(self._host)  # one the engines' nodes reach (not 0.0.0.0)
            shared = {"master_address": address, "master_port": port, "timeout_s": self._timeout_s}
            return shared, lambda: _GlooTrainerGroup(
                GlooGroup.join(address, port, 0, world_size, self._timeout_s, listener)
            )
        unique_id = _nccl_unique_id()
        return nccl_init_info(unique_id), lambda: _NcclTrainerGroup(unique_id, world_size, self._timeout_s)

    def _join_watching_acks(self, join_rank0) -> _Joined:
        """Rank 0's join, which blocks until every engine worker has joined. Meanwhile an actor
        whose join failed says so (an Ack with its error): forming stops at once, naming it,
        rather than waiting on a member that will never come (gloo would wait for ever)."""
        joined: Future = Future()

        def join() -> None:
            try:
                joined.set_result(join_rank0())
            except BaseException as err:  # noqa: BLE001 - raised below, in the forming thread
                joined.set_exception(err)

        # A daemon: a join that can never complete is left behind when the run stops.
        threading.Thread(target=join, daemon=True).start()
        acked: set[int] = set()
        deadline = time.monotonic() + self._timeout_s
        while not joined.done():
            if self._closing.is_set() or time.monotonic() > deadline:
                raise TimeoutError(
                    f"weight broadcast: the group did not form within {self._timeout_s}s (or the run is stopping)"
                )
            if not self._socket.poll(_POLL_S * 1000):
                continue
            _, message = self._receive("the actors' joins")
            if isinstance(message, Ack) and message.error:
                raise RuntimeError(
                    f"weight broadcast: actor {message.actor_id} could not join the group: {message.error}"
                )
            if isinstance(message, Ack):
                acked.add(message.actor_id)
        return _Joined(joined.result(), acked)

    def _await_acks(self, already: set[int] = frozenset()) -> None:
        waiting = {hello.actor_id for hello in self._receivers.values()} - already
        errors, deadline = [], time.monotonic() + self._timeout_s
        while waiting:
            _, message = self._receive(f"actors {sorted(waiting)} to acknowledge", deadline)
            if isinstance(message, Ack) and message.actor_id in waiting:
                waiting.discard(message.actor_id)
                if message.error:
                    errors.append(f"actor {message.actor_id}: {message.error}")
        if errors:
            raise RuntimeError("weight broadcast failed on " + "; ".join(errors))

    def _receive(self, waiting_for: str, deadline: float | None = None):
        """(identity, the next message) from one of the run's actors, or (identity, None) for a
        frame skipped (module doc): the caller's own wait decides whether to read on. Raises
        TimeoutError past `deadline` (default: timeout_s from now)."""
        deadline = deadline if deadline is not None else time.monotonic() + self._timeout_s
        while not self._socket.poll(_POLL_S * 1000):
            if self._closing.is_set():
                raise RuntimeError(f"weight broadcast closed while waiting for {waiting_for}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"weight broadcast: waited {self._timeout_s}s for {waiting_for}")
        parts = self._socket.recv_multipart()
        try:
            if len(parts) != 2:
                raise MalformedMessage(f"a control frame has {len(parts) - 1} parts, expected 1")
            identity, message = parts[0], decode_message(parts[1])
            self._check_sender(identity, message)
            return identity, message
        except MalformedMessage as err:
            self._skip(str(err))
            return parts[0], None

    def _check_sender(self, identity: bytes, message) -> None:
        hello = self._receivers.get(identity)
        if isinstance(message, Hello):
            if message.actor_id not in self._expected_ids:
                raise MalformedMessage(
                    f"a Hello from actor {message.actor_id}, not one of the run's {len(self._expected_ids)}"
                )
            if any(h.actor_id == message.actor_id for other, h in self._receivers.items() if other != identity):
                raise MalformedMessage(f"a second Hello for actor {message.actor_id} from another socket")
            if hello is not None and hello.actor_id != message.actor_id:
                raise MalformedMessage(
                    f"a Hello for actor {message.actor_id} from the socket of actor {hello.actor_id}"
                )
        elif hello is None or getattr(message, "actor_id", hello.actor_id) != hello.actor_id:
            raise MalformedMessage(f"a {type(message).__name__} from a socket that is no actor of the group")

    def _skip(self, why: str) -> None:
        self.rejected += 1
        log.warning("weight broadcast skipped a control frame: %s", excerpt(why, 300))


@dataclass(frozen=True)
class _Joined:
    group: TrainerGroup
    acked: set[int]  # actors whose join acknowledgement came while rank 0 was joining


class _GlooTrainerGroup:
    def __init__(self, group: GlooGroup):
        self.group = group

    def broadcast(self, tensor: torch.Tensor) -> None:
        self.group.broadcast(tensor.detach().to("cpu").contiguous())

    def finish(self) -> None:
        pass  # gloo broadcasts are synchronous


class _NcclTrainerGroup:
    """Rank 0 of the NCCL group, through vLLM's communicator (the engines' side uses the same)."""

    def __init__(self, unique_id: bytes, world_size: int, timeout_s: float):
        from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator

        self.device = torch.device("cuda", torch.cuda.current_device())
        self.comm = PyNcclCommunicator.from_unique_id_bytes(
            unique_id, rank=0, world_size=world_size, device=self.device
        )
        self.timeout_s = timeout_s
        self._sent: list[torch.Tensor] = []

    def broadcast(self, tensor: torch.Tensor) -> None:
        # NCCL reads `numel` elements from the pointer: a contiguous copy on this GPU, kept
        # alive until the stream has sent it.
        sent = tensor.detach().to(self.device).contiguous()
        self.comm.broadcast(sent, src=0, stream=torch.cuda.current_stream())
        self._sent.append(sent)

    def finish(self) -> None:
        # Polled rather than synchronized: NCCL has no timeout, and a dead peer would hang a
        # synchronize forever; this way the publish fails and says so.
        sent = torch.cuda.Event()
        sent.record(torch.cuda.current_stream())
        deadline = time.monotonic() + self.timeout_s
        while not sent.query():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"weight broadcast: NCCL did not complete in {self.timeout_s}s; has an engine worker died?"
                )
            time.sleep(0.001)
        self._sent.clear()


def nccl_init_info(unique_id: bytes) -> dict:
    """What every engine's NCCL init info shares: the group's id. It travels in our own message,
    so there is no TCPStore rendezvous and nothing is unpickled on either side."""
    return {"nccl_unique_id_b64": base64.b64encode(unique_id).decode("ascii")}


def _nccl_unique_id() -> bytes:
    from vllm.distributed.device_communicators.pynccl_wrapper import NCCLLibrary

    return bytes(NCCLLibrary().ncclGetUniqueId().internal)
