"""Staleness gate: admission arithmetic worked by hand."""

import pytest

from coordination.gate import GateStats, StalenessGate


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


def test_a_dead_actors_undelivered_admissions_come_back():
    # eta = 0, 2 groups per step. Actor 0 is admitted 2 groups, actor 1 one (the third, step 1's,
    # needs version 1: refused). Actor 0 delivered one group, then died: its other admission
    # would never arrive, so it goes back and version 0 may start its replacement.
    gate = StalenessGate(groups_per_step=2, max_staleness=0)
    assert gate.admit_up_to(0, 2, actor_id=0) == 2
    assert gate.admit_up_to(0, 1, actor_id=1) == 0
    assert gate.reclaim(actor_id=0, delivered=1) == 1
    assert gate.stats() == GateStats(admitted=1, given_back=1, refused=1, reclaimed=1)
    assert gate.admit_up_to(0, 1, actor_id=1) == 1
    # Nothing held beyond what was delivered: nothing to reclaim.
    assert gate.reclaim(actor_id=1, delivered=1) == 0


def test_an_actor_gives_back_only_what_it_holds():
    gate = StalenessGate(groups_per_step=4, max_staleness=0)
    gate.admit_up_to(0, 2, actor_id=0)
    gate.admit_up_to(0, 2, actor_id=1)
    gate.give_back(1, actor_id=0)  # its scoring failed: held 2 -> 1 (3 admitted in all)
    with pytest.raises(ValueError, match="actor 0 cannot give back 2 admissions: it holds 1"):
        gate.give_back(2, actor_id=0)
    with pytest.raises(ValueError, match="delivered 3 groups but was admitted 1"):
        gate.reclaim(0, delivered=3)


def test_a_restored_gate_continues_the_counts():
    # A run resumed at policy version 3 with 2 groups per step: 6 groups were used, none in
    # flight, so the next group is the 7th (index 6), used by step 3; eta = 0 needs version 3.
    gate = StalenessGate(groups_per_step=2, max_staleness=0)
    gate.restore(GateStats(admitted=6, given_back=2, refused=5, reclaimed=1), held={0: 4, 1: 2})
    assert not gate.try_admit(2) and gate.try_admit(3)
    assert gate.stats() == GateStats(admitted=7, given_back=2, refused=6, reclaimed=1)
    assert gate.reclaim(actor_id=1, delivered=2) == 0
