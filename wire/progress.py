"""Where each rollout actor is in its prompt stream: which prompt positions reached the learner.

An actor's prompts form an endless stream (its shard, reshuffled every epoch); position i of it
is fixed by the run's seed, so "position i" names the same prompt in any process, before or
after a crash. The learner records the positions it has received and consumed; an actor
restarted after a death, or a run resumed from a checkpoint, starts from that record: it
generates every position not in it, in order, and none that is, so no prompt is skipped or
repeated. Groups may arrive out of order (scoring runs concurrently), so the record is a set of
positions, kept as sorted disjoint [start, end) ranges: a run without faults holds one range.

Imports nothing beyond the standard library: safe to import anywhere.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class ShardProgress:
    """A set of stream positions (non-negative ints) as sorted, disjoint, non-touching ranges."""

    ranges: list[tuple[int, int]] = field(default_factory=list)

    def __contains__(self, position: int) -> bool:
        at = bisect.bisect_right(self.ranges, (position, float("inf"))) - 1
        return at >= 0 and self.ranges[at][0] <= position < self.ranges[at][1]

    def add(self, position: int) -> bool:
        """Record `position`; False if it was already there (a duplicate)."""
        if position < 0:
            raise ValueError(f"stream positions are >= 0, got {position}")
        if position in self:
            return False
        at = bisect.bisect_left(self.ranges, (position, position))
        start, end = position, position + 1
        if at > 0 and self.ranges[at - 1][1] == position:  # extends the range before
            at -= 1
            start = self.ranges[at][0]
            del self.ranges[at]
        if at < len(self.ranges) and self.ranges[at][0] == end:  # joins the range after
            end = self.ranges[at][1]
            del self.ranges[at]
        self.ranges.insert(at, (start, end))
        return True

    def __len__(self) -> int:
        return sum(end - start for start, end in self.ranges)

    def missing(self, start: int = 0) -> Iterator[int]:
        """Every position from `start` on that is not recorded, in order (endless)."""
        position = start
        for low, high in self.ranges:
            if high <= position:
                continue
            while position < low:
                yield position
                position += 1
            position = max(position, high)
        while True:
            yield position
            position += 1

    def to_wire(self) -> list[list[int]]:
        return [[start, end] for start, end in self.ranges]

    @classmethod
    def from_wire(cls, value: object) -> ShardProgress:
        """From `to_wire`'s form, checked: a checkpoint or message that lies is refused."""
        if not isinstance(value, list):
            raise ValueError(f"shard progress must be a list of [start, end] pairs, got {type(value).__name__}")
        ranges, previous_end = [], -1
        for pair in value:
            if not (isinstance(pair, list) and len(pair) == 2 and all(type(v) is int for v in pair)):
                raise ValueError(f"shard progress: {pair!r} is not a pair of ints")
            start, end = pair
            if not previous_end < start < end:
                raise ValueError(
                    f"shard progress: range {pair} is empty, negative, or overlaps or touches the one before"
                )
            ranges.append((start, end))
            previous_end = end
        return cls(ranges)
