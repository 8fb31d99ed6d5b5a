"""Every random stream of a run, derived from its one `seed`.

A role never takes a seed knob of its own: `python launch.py seed=N` changes and fixes prompt
order, caption sampling in every actor and engine, reasoner sampling in every replica, the
learner and the evaluation. Streams are derived by hashing (seed, stream name), so they are
independent of one another and stable across processes, Python versions and machines.
"""

from __future__ import annotations

import hashlib


def derived_seed(seed: int, *stream: str | int) -> int:
    """A 31-bit seed for the named stream of run `seed`, e.g. `derived_seed(3, "actor", 1)`."""
    name = "/".join(str(part) for part in (seed, *stream))
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") >> 1
