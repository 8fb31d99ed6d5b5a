"""Shard progress: the set of prompt-stream positions the learner has, worked by hand."""

from itertools import islice

import pytest

from wire.progress import ShardProgress


def test_positions_in_order_make_one_range():
    progress = ShardProgress()
    for position in range(5):
        assert progress.add(position)
    assert progress.ranges == [(0, 5)]
    assert len(progress) == 5


def test_out_of_order_positions_merge_once_the_gap_fills():
    progress = ShardProgress()
    for position in (0, 1, 3, 4, 7):
        progress.add(position)
    assert progress.ranges == [(0, 2), (3, 5), (7, 8)]
    progress.add(2)  # joins [0, 2) and [3, 5)
    assert progress.ranges == [(0, 5), (7, 8)]
    progress.add(6)  # touches [7, 8) from below
    assert progress.ranges == [(0, 5), (6, 8)]


def test_a_position_seen_twice_is_a_duplicate():
    progress = ShardProgress()
    assert progress.add(3)
    assert not progress.add(3)
    assert progress.ranges == [(3, 4)]
    assert 3 in progress and 2 not in progress and 4 not in progress


def test_missing_positions_are_the_gaps_then_everything_after():
    progress = ShardProgress([(0, 2), (3, 5), (7, 8)])
    assert list(islice(progress.missing(), 5)) == [2, 5, 6, 8, 9]
    assert list(islice(progress.missing(start=4), 3)) == [5, 6, 8]
    assert list(islice(ShardProgress().missing(), 3)) == [0, 1, 2]


def test_wire_form_round_trips_and_lies_are_refused():
    progress = ShardProgress([(0, 2), (5, 9)])
    assert ShardProgress.from_wire(progress.to_wire()) == progress
    for bad in ([[2, 2]], [[0, 3], [3, 5]], [[4, 6], [0, 2]], [[-1, 2]], [[0, "1"]], "0-2", [[0, 1, 2]]):
        with pytest.raises(ValueError, match="shard progress"):
            ShardProgress.from_wire(bad)


def test_negative_positions_are_refused():
    with pytest.raises(ValueError, match=">= 0"):
        ShardProgress().add(-1)
