"""Staleness gate: admission arithmetic worked by hand."""

import pytest

from learner.gate import GateStats, StalenessGate


def test_on_policy_gate_admits_one_step_of_groups_per_version():
    # eta = 0, 2 groups per step: groups 0 and 1 are used by step 0 (updating version 0),
    # so version-0 weights may start them; group 2 is used by step 1 and needs version 1.
    gate = StalenessGate(groups_per_step=2, max_staleness=0)
    assert gate.try_admit(0) and gate.try_admit(0)
    assert not gate.try_admit(0)
    assert gate.try_admit(1)  # after the push of version 1


def test_staleness_budget_lets_old_weights_run_ahead():
    # eta = 2, 1 group per step: group n is used by step n, so version v may start groups
    # with n // 1 - 2 <= v, i.e. n <= v + 2: three groups from version 0 (n = 0, 1, 2).
    gate = StalenessGate(groups_per_step=1, max_staleness=2)
    assert [gate.try_admit(0) for _ in range(4)] == [True, True, True, False]
    assert gate.stats().refused == 1


def test_dropped_groups_give_their_place_back():
    gate = StalenessGate(groups_per_step=2, max_staleness=0)
    assert gate.try_admit(0) and gate.try_admit(0)
    gate.give_back(1)  # the learner dropped one of step 0's groups
    assert gate.try_admit(0)  # so version 0 may generate its replacement
    assert gate.stats().admitted == 2 and gate.stats().given_back == 1


def test_give_back_more_than_admitted_is_an_error():
    gate = StalenessGate(groups_per_step=1, max_staleness=0)
    with pytest.raises(ValueError, match="cannot give back 1 of 0"):
        gate.give_back(1)


def test_admit_up_to_stops_at_the_first_refusal():
    gate = StalenessGate(groups_per_step=2, max_staleness=1)
    # Version 0 may start the first 4 groups (steps 0 and 1, eta 1): asked for 3, then 3 more.
    assert gate.admit_up_to(0, 3) == 3
    assert gate.admit_up_to(0, 3) == 1
    assert gate.stats() == GateStats(admitted=4, given_back=0, refused=1)
    assert gate.admit_up_to(0, 2) == 0
    assert gate.admit_up_to(1, 2) == 2  # version 1 may start steps 1 and 2's groups
