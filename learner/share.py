"""Rank 0 owns the replay queue; this hands every rank its share of a step's groups.

Frames travel through the learner's own process group as raw bytes (no pickling): one broadcast
of the frame lengths, one of the concatenated frames. Every rank decodes (and so validates)
them and keeps groups[rank::world_size]. Handing out from one queue keeps the per-rank counts
exact, which per-rank queues fed round-robin by the actors could not guarantee.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from wire.scored_group import ScoredGroup, decode_group, encode_group


def share_groups(groups: list[ScoredGroup] | None, count: int, device: torch.device) -> list[ScoredGroup]:
    """Collective: rank 0 passes the step's `count` groups, the others None; all get the list."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return list(groups)
    frames = [encode_group(g) for g in groups] if groups is not None else []
    lengths = torch.tensor([len(f) for f in frames] if frames else [0] * count, dtype=torch.int64, device=device)
    dist.broadcast(lengths, src=0)
    total = int(lengths.sum())
    if frames:
        payload = torch.from_numpy(np.frombuffer(b"".join(frames), dtype=np.uint8).copy()).to(device)
    else:
        payload = torch.empty(total, dtype=torch.uint8, device=device)
    dist.broadcast(payload, src=0)
    if groups is not None:
        return list(groups)
    data = payload.cpu().numpy().tobytes()
    offsets = np.concatenate([[0], np.cumsum(lengths.cpu().numpy())])
    return [decode_group(data[offsets[i] : offsets[i + 1]]) for i in range(count)]
