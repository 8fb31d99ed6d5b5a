"""Staleness accounting on hand-worked numbers (learner/staleness.py)."""

import math

import pytest

from learner.staleness import StalenessStats, is_too_stale, staleness
from learner.step_metrics import waiting_staleness
from wire import metric_names as names


def test_staleness_min_mean_max():
    # Learner at 10, samples from 10, 9, 7, 7: lags 0, 1, 3, 3 -> min 0, mean 7/4 = 1.75, max 3.
    assert staleness(10, [10, 9, 7, 7]) == StalenessStats(min=0, mean=1.75, max=3)


def test_staleness_all_fresh():
    assert staleness(5, [5, 5]) == StalenessStats(min=0, mean=0.0, max=0)


def test_staleness_rejects_future_and_empty():
    with pytest.raises(ValueError, match="newer"):
        staleness(3, [2, 4])
    with pytest.raises(ValueError):
        staleness(3, [])


def test_eta_zero_is_strictly_on_policy():
    # eta = 0: only samples from the current version pass; one version old is too stale.
    assert not is_too_stale(10, 10, max_staleness=0)
    assert is_too_stale(10, 9, max_staleness=0)


def test_eta_bound_is_inclusive():
    # eta = 2: lag 2 (10 - 8) is allowed, lag 3 (10 - 7) is not.
    assert not is_too_stale(10, 8, max_staleness=2)
    assert is_too_stale(10, 7, max_staleness=2)


def test_is_too_stale_validates():
    with pytest.raises(ValueError):
        is_too_stale(10, 9, max_staleness=-1)
    with pytest.raises(ValueError, match="newer"):
        is_too_stale(10, 11, max_staleness=4)


def test_what_waits_is_aged_against_the_next_step():
    # The next step trains version 5; waiting groups of versions 3, 5, 4 would be 2, 0, 1 late.
    row = waiting_staleness("queue", 5, [3, 5, 4])
    assert row == {names.STALENESS_QUEUE_MIN: 0, names.STALENESS_QUEUE_MEAN: 1.0, names.STALENESS_QUEUE_MAX: 2}
    # Nothing waiting: null in metrics.jsonl (NaN here), not a made-up 0.
    assert all(math.isnan(v) for v in waiting_staleness("actors", 5, []).values())
