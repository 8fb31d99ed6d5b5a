"""A gloo process group for broadcasting weights on CPU, kept outside torch.distributed's global
state (the learner's DeepSpeed group and vLLM's own groups live there). Rank 0 (the learner)
hosts the rendezvous store; the store carries only gloo's own addresses, nothing pickled.

A TCPStore's server listens on every interface unless handed a socket: `listening_socket`
binds the configured host, so a store (this one, and the learner's own process group's) is
reachable only where the config says."""

from __future__ import annotations

import datetime
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist

from transport.sockets import WILDCARDS


def local_address_towards(address: str, port: int) -> str:
    """This host's address on the route to `address` (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((address, port))
        return probe.getsockname()[0]


def listening_socket(host: str, port: int = 0) -> socket.socket:
    """A TCP socket listening on `host` only (a wildcard: every interface), for a store's server;
    port 0 = a free one (read it from `getsockname()`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("" if host in WILDCARDS else host, port))
    listener.listen(128)
    return listener


def rendezvous_store(
    address: str, port: int, world_size: int, timeout: datetime.timedelta, listener: socket.socket | None
) -> dist.TCPStore:
    """The group's store: served on `listener` (rank 0), or reached at address:port (the others).
    The store takes the listening socket's descriptor over (and closes it when destroyed)."""
    if listener is None:
        return dist.TCPStore(address, port, world_size, is_master=False, timeout=timeout)
    return dist.TCPStore(
        address,
        port,
        world_size,
        is_master=True,
        timeout=timeout,
        wait_for_workers=False,
        master_listen_fd=listener.detach(),
    )


@dataclass
class GlooGroup:
    store: dist.TCPStore  # held: the group needs its store alive
    group: dist.ProcessGroupGloo

    @classmethod
    def join(
        cls,
        address: str,
        port: int,
        rank: int,
        world_size: int,
        timeout_s: float,
        listener: socket.socket | None = None,
    ) -> GlooGroup:
        """Join as `rank`; blocks until all `world_size` members have joined (or `timeout_s`).
        Rank 0 serves the store on `listener` (`listening_socket`), bound to the configured host."""
        if (rank == 0) != (listener is not None):
            raise ValueError("rank 0, and only rank 0, serves the rendezvous store on a listening socket")
        timeout = datetime.timedelta(seconds=timeout_s)
        store = rendezvous_store(address, port, world_size, timeout, listener)
        options = dist.ProcessGroupGloo._Options()
        options._timeout = timeout
        # Gloo's default is the address the host name resolves to, often loopback, which peers
        # on other nodes cannot reach; the address that routes to rank 0 is one they can.
        options._devices = [dist.ProcessGroupGloo.create_device(hostname=local_address_towards(address, port))]
        return cls(store, dist.ProcessGroupGloo(dist.PrefixStore("weights", store), rank, world_size, options))

    def broadcast(self, tensor: torch.Tensor) -> None:
        """Broadcast `tensor` in place from rank 0 (a CPU tensor)."""
        options = dist.BroadcastOptions()
        options.rootRank = 0
        self.group.broadcast([tensor], options).wait()
