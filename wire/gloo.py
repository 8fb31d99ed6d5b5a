"""A gloo process group for broadcasting weights on CPU, kept outside torch.distributed's global
state (the learner's DeepSpeed group and vLLM's own groups live there). Rank 0 (the learner)
hosts the rendezvous store; the store carries only gloo's own addresses, nothing pickled."""

from __future__ import annotations

import datetime
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist


def local_address_towards(address: str, port: int) -> str:
    """This host's address on the route to `address` (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((address, port))
        return probe.getsockname()[0]


@dataclass
class GlooGroup:
    store: dist.TCPStore  # held: the group needs its store alive
    group: dist.ProcessGroupGloo

    @classmethod
    def join(cls, address: str, port: int, rank: int, world_size: int, timeout_s: float) -> GlooGroup:
        """Join as `rank`; blocks until all `world_size` members have joined (or `timeout_s`)."""
        timeout = datetime.timedelta(seconds=timeout_s)
        store = dist.TCPStore(address, port, world_size, is_master=rank == 0, timeout=timeout, wait_for_workers=False)
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
