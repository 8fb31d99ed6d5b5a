"""What the roles' remote surfaces return (coordination/): read by hand, on plain values."""

import json
import math

from coordination.gate import GateStats
from coordination.reports import GroupAccount, StepMetrics
from coordination.resume import ActorStart, RejoinPoint, ResumePoint
from supervisor.faults import FaultLog
from supervisor.summary import run_summary, write_summary
from wire import metric_names as names
from wire.progress import ShardProgress
from wire.scored_group import ActorCounters


def _counters(generated: int, version: int) -> ActorCounters:
    return ActorCounters(
        groups_generated=generated,
        groups_lost=1,
        bad_records=0,
        score_failures=2,
        answers_refused=0,
        empty_captions=0,
        judge_unparsed=0,
        weight_updates=version,
        weight_updates_rejected=0,
        policy_version=version,
    )


def test_the_latest_step_reads_its_row_by_the_metric_names():
    before = StepMetrics()
    assert before.step == -1 and before.heldout_accuracy is None and math.isnan(before.reward_mean)
    row = {
        names.STEP: 3,
        names.POLICY_VERSION: 4,
        names.REWARD_MEAN: 0.5,
        names.STALENESS_MEAN: 1.25,
        names.THROUGHPUT_CAPTIONS_PER_S: 8.0,
        names.EVAL_ACCURACY: 0.75,
        names.REPLAY_ACCEPTED: 9,
    }
    latest = StepMetrics(row)
    assert (latest.step, latest.policy_version, latest.reward_mean, latest.staleness_mean) == (3, 4, 0.5, 1.25)
    assert (latest.captions_per_s, latest.heldout_accuracy) == (8.0, 0.75)
    assert latest.get(names.REPLAY_ACCEPTED) == 9 and latest.get(names.REPLAY_REJECTED, 0) == 0


def test_generated_metric_names_keep_their_tensorboard_tags():
    assert names.gate_metric("admitted") == names.GATE_ADMITTED == "gate/admitted"
    assert names.actors_total("groups_lost") == "rollout/groups_lost"
    assert names.waiting_staleness("queue", "max") == names.STALENESS_QUEUE_MAX == "staleness/queue_max"
    assert names.time_metric("wait_s") == "time/wait_s"


def test_the_account_sums_each_counter_over_the_actors_and_the_summary_file_keeps_plain_keys(tmp_path):
    account = GroupAccount(
        steps=2,
        policy_version=2,
        groups_accepted=5,
        groups_consumed=4,
        groups_dropped={"stale": 1, "uniform": 0, "duplicate": 0},
        groups_buffered_at_end=0,
        groups_lost=0,
        groups_duplicated=0,
        frames_rejected=0,
        actors={0: _counters(3, 2), 1: _counters(4, 1)},
    )
    assert account.actor_total("groups_generated") == 7 and account.actor_total("score_failures") == 4
    summary = run_summary(account, GateStats(admitted=5, given_back=1, refused=0), FaultLog())
    write_summary(summary, tmp_path / "summary.json")
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["groups_generated"] == 7 and written["groups_admitted"] == 6
    assert written["groups_dropped"] == {
        "stale": 1,
        "uniform": 0,
        "duplicate": 0,
        "scoring_failed": 2,
        "lost_with_dead_actor": 0,
    }
    assert written["faults_survived_by_kind"] == {"scoring_retry": 4}


def test_a_restarted_actor_starts_past_what_arrived_with_its_counters():
    received = ShardProgress([(0, 3), (5, 6)])
    start = RejoinPoint(received, _counters(6, 2)).actor_start()
    assert start == ActorStart(done=received, counters=_counters(6, 2)) and start.min_version == 0
    assert RejoinPoint(ShardProgress(), None).actor_start() == ActorStart(done=ShardProgress())


def test_a_resumed_run_starts_each_actor_past_what_the_learner_took_on_the_checkpoints_weights():
    resumed = ResumePoint(
        policy_version=4,
        steps_done=4,
        taken={0: ShardProgress([(0, 5)])},
        gate=GateStats(8, 1, 0),
        actor_counters={0: _counters(5, 3)},
    )
    assert resumed.actor_start(0) == ActorStart(ShardProgress([(0, 5)]), 4, _counters(5, 3))
    assert resumed.actor_start(1) == ActorStart(ShardProgress(), 4, None)  # it had delivered nothing
    assert resumed.gate_held() == {0: 5}
