"""A gloo process group for broadcasting weights on CPU, kept outside torch.distributed's global
state (the learner's DeepSpeed group and vLLM's own groups live there). Rank 0 (the learner)
hosts the rendezvous store; the store carries only gloo's own addresses, nothing pickled."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class GlooGroup:
    store: dist.TCPStore  # held: the group needs its store alive
    group: dist.ProcessGroupGloo

    @classmethod
    def join(cls, address: str, port: int, rank: int, world_size: int, timeout_s: float) -> GlooGroup:
        """Join as `rank`; blocks until all `world_size` members have joined (or `timeout_s`)."""
        timeout = datetime.timedelta(seconds=timeout_s)
        store = dist.TCPStore(address, port, world_size, is_master=rank == 0, timeout=timeout, wait_for_workers=False)
        return cls(store, dist.ProcessGroupGloo(dist.PrefixStore("weights", store), rank, world_size, timeout))

    def broadcast(self, tensor: torch.Tensor) -> None:
        """Broadcast `tensor` in place from rank 0 (a CPU tensor)."""
        options = dist.BroadcastOptions()
        options.rootRank = 0
        self.group.broadcast([tensor], options).wait()
