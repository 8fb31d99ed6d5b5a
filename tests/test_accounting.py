"""The run's accounting, worked by hand: the ledger, the summary, the soak's schedule and garbage."""

import json
from collections import Counter

import pytest

from configs.commands import SoakConfig
from coordination.gate import GateStats
from coordination.reports import GroupAccount
from learner.accounting import Ledger, StepGroups, keep_steps_before
from supervisor.faults import FaultLog
from supervisor.soak import Schedule, garbage_frames, soak_report
from supervisor.summary import run_summary
from tests.test_messages import make_group
from wire.buffers import MalformedMessage
from wire.scored_group import ActorCounters, decode_group


def test_the_ledger_counts_what_steps_took_and_a_position_taken_twice():
    ledger = Ledger()
    ledger.take(make_group(prompt_position=0))
    ledger.take(make_group(prompt_position=1), dropped_as="stale")
    ledger.take(make_group(prompt_position=3), dropped_as="uniform")
    ledger.take(make_group(prompt_position=0))  # the same group again
    assert (ledger.trained, ledger.dropped, ledger.twice, ledger.taken) == (2, {"stale": 1, "uniform": 1}, 1, 4)
    assert ledger.consumed[1].ranges == [(0, 2), (3, 4)]  # make_group's actor is 1
    assert Ledger.from_state(json.loads(json.dumps(ledger.to_state()))) == ledger


def test_a_step_lists_its_groups_by_actor_position_and_prompt():
    row = json.loads(
        StepGroups(4, [make_group(prompt_position=2)], [(make_group(prompt_position=3), "stale")]).to_json()
    )
    assert row == {"step": 4, "trained": [[1, 2, "p7"]], "dropped": [[1, 3, "p7", "stale"]]}


def test_a_resumed_run_cuts_its_step_files_back_to_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "x": s * s}) + "\n" for s in range(5)))
    keep_steps_before(path, 3)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [0, 1, 2]
    keep_steps_before(tmp_path / "absent.jsonl", 3)  # nothing to cut


def _accounting(**changes) -> GroupAccount:
    actor = ActorCounters(
        groups_generated=12,
        groups_lost=1,
        bad_records=0,
        score_failures=3,
        answers_refused=1,
        empty_captions=0,
        judge_unparsed=0,
        weight_updates=4,
        weight_updates_rejected=0,
        policy_version=4,
        format_timeouts=0,
    )
    base = {
        "steps": 4,
        "policy_version": 4,
        "groups_accepted": 10,
        "groups_consumed": 8,
        "groups_dropped": {"stale": 1, "uniform": 0, "duplicate": 2},
        "groups_buffered_at_end": 1,
        "groups_lost": 0,
        "groups_duplicated": 0,
        "frames_rejected": 4,
        "actors": {0: actor, 1: actor},
    }
    return GroupAccount(**{**base, **changes})


def test_the_summary_adds_the_faults_each_role_absorbed_to_the_drivers():
    faults = FaultLog()
    faults.inject("actor_death", "killed actor 0")
    faults.survive("actor_death", "back")
    summary = run_summary(_accounting(), GateStats(admitted=12, given_back=3, refused=7, reclaimed=2), faults)
    assert summary["groups_generated"] == 24  # two actors' 12
    assert summary["groups_admitted"] == 15  # 12 held now + 3 given back
    assert summary["groups_dropped"] == {
        "stale": 1,
        "uniform": 0,
        "duplicate": 2,
        "scoring_failed": 2,
        "lost_with_dead_actor": 2,
    }
    # 1 restart + 6 scoring retries + 2 costly answers + 4 malformed frames + 2 duplicates dropped
    assert summary["faults_survived_by_kind"] == {
        "actor_death": 1,
        "scoring_retry": 6,
        "costly_answer": 2,
        "malformed_frame": 4,
        "duplicate_group": 2,
    }
    assert summary["faults_survived"] == 15 and summary["faults_injected"] == 1


def test_poison_is_survived_per_class_and_only_where_a_soak_sent_it():
    from supervisor.poison import POISON_CLASSES

    # 2 malformed frames, every poison class refused once, and 3 more token_version refusals:
    # real groups out of step with the run, never counted as poison survived.
    by_reason = {"malformed": 2, **dict.fromkeys(POISON_CLASSES, 1), "token_version": 4}
    accounting = _accounting(frames_rejected=2 + len(POISON_CLASSES) + 3, frames_rejected_by_reason=by_reason)
    soak = FaultLog()
    soak.inject("poison_group", "one of each class", count=len(POISON_CLASSES))
    summary = run_summary(accounting, GateStats(0, 0, 0), soak)
    assert summary["faults_survived_by_kind"]["poison_group"] == len(POISON_CLASSES)
    assert summary["faults_survived_by_kind"]["malformed_frame"] == 2
    assert summary["frames_rejected_by_reason"] == by_reason
    assert "poison_group" not in run_summary(accounting, GateStats(0, 0, 0), FaultLog())["faults_survived_by_kind"]


def test_the_soak_report_counts_a_fault_survived_only_up_to_what_was_injected():
    summary = run_summary(_accounting(frames_rejected=4), GateStats(0, 0, 0), FaultLog())
    summary["faults_injected_by_kind"] = {"malformed_frame": 4, "replica_death": 2}
    summary["faults_injected"] = 6
    summary["faults_survived_by_kind"] = {"malformed_frame": 4, "replica_death": 1, "scoring_retry": 6}
    report = soak_report(summary, SoakConfig(), elapsed_s=61.26)
    # The 6 scoring retries were not injected: they do not make up for the replica that was not replaced.
    assert (report["faults_injected"], report["faults_survived"]) == (6, 5)
    assert report["faults_not_survived"] == {"replica_death": 1}
    assert report["duration_s"] == 61.3 and report["groups_lost"] == 0


def test_the_soak_staggers_each_kind_then_repeats_it_at_its_interval():
    schedule = Schedule(
        SoakConfig(
            first_fault_s=10, garbage_every_s=30, actor_kill_every_s=100, replica_kill_every_s=0, poison_every_s=0
        )
    )
    assert schedule.take_due(9.9) == []
    assert schedule.take_due(10) == ["garbage"]
    assert schedule.take_due(20) == ["actor_death"]  # first + 10; replicas never (interval 0)
    assert schedule.take_due(39.9) == []
    assert schedule.take_due(40) == ["garbage"]  # 10 + 30
    assert Counter(k for t in range(41, 200) for k in schedule.take_due(t)) == {"garbage": 5, "actor_death": 1}


def test_every_garbage_frame_is_refused_for_its_own_reason():
    reasons = []
    for frame in garbage_frames():
        with pytest.raises(MalformedMessage) as refused:
            decode_group(frame)
        reasons.append(str(refused.value))
    assert len(set(reasons)) == len(reasons) == 4
    assert any("schema" in r for r in reasons) and any("must be a msgpack map" in r for r in reasons)


def test_the_reliability_table_shows_each_fault_and_the_two_numbers_that_must_be_zero():
    from benchmarks.reliability import reliability_table

    summary = run_summary(_accounting(), GateStats(12, 3, 7, 2), FaultLog())
    summary.update(
        faults_injected_by_kind={"actor_death": 2, "malformed_frame": 4},
        faults_injected=6,
        faults_survived_by_kind={"actor_death": 1, "malformed_frame": 4, "scoring_retry": 6},
    )
    table = reliability_table(soak_report(summary, SoakConfig(duration_s=60), elapsed_s=75.0))
    assert "| actor_death | 2 | 1 |" in table and "| malformed_frame | 4 | 4 |" in table
    assert "| **all** | **6** | **5** |" in table
    assert "| **lost** (accepted, never used or dropped) | **0** |" in table
    assert "75 s of training (4 learner steps)" in table and "scoring_retry 6" in table


def test_a_dead_actor_under_a_broadcast_weight_sync_ends_the_run_saying_why():
    from configs.load import load_config
    from supervisor.restarts import ActorLost, restart_actor

    config = load_config(overrides=["rollout.engine=vllm", "learner.weight_sync.backend=gloo"])
    with pytest.raises(
        ActorLost, match="rollout actor 1 died \\(node gone\\); learner.weight_sync.backend=gloo cannot take"
    ):
        restart_actor(config, roles=None, index=1, died=RuntimeError("node gone"), faults=FaultLog())
