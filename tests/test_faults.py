"""Faults on a real run: a soak that kills an actor and a reasoner replica and sends the replay
queue garbage. Nothing accepted is lost or used twice. (A driver killed and resumed:
tests/test_launch.py, beside the uninterrupted run it is compared with.)"""

import json

import pytest

from configs.schema import RolloutConfig
from tests.run_files import positions
from tests.test_launch import short_run


@pytest.mark.integration
def test_a_soak_survives_every_fault_and_loses_nothing(tmp_path, tiny_cache, run_launch):
    """One of each fault, staggered: garbage frames at 5 s, poison groups at 10 s, an actor killed
    at 15 s, a reasoner replica killed at 25 s; the soak runs 30 s and then waits for the last
    recoveries."""
    soak_dir = tmp_path / "soak"
    args = [
        "soak",
        f"out={soak_dir}",
        *short_run(tmp_path, tiny_cache, steps=1)[1:],
        "soak.duration_s=30",
        "soak.first_fault_s=5",
        "soak.actor_kill_every_s=1000",
        "soak.replica_kill_every_s=1000",
        "soak.garbage_every_s=1000",
        "soak.poison_every_s=1000",
    ]
    code, out = run_launch(args).finish(timeout=900)
    assert code == 0, out[-3000:]
    report = json.loads((soak_dir / "soak.json").read_text())
    # garbage_frames() sends 4 frames the queue must refuse, then one too large for it; the
    # poison, one group of each of the 7 classes the queue refuses for their meaning.
    injected = {"malformed_frame": 4, "oversized_frame": 1, "poison_group": 7, "actor_death": 1, "replica_death": 1}
    assert report["faults_injected_by_kind"] == injected
    assert report["faults_injected"] == report["faults_survived"] == sum(injected.values())
    assert report["faults_not_survived"] == {}
    assert report["groups_lost"] == 0 and report["groups_duplicated"] == 0
    for kind in injected:  # each fault is printed with its time
        assert any("fault injected at" in line and kind in line for line in out.splitlines())
    # The actor's restart regenerated what it lost: each position is taken once, and one missing
    # below the last taken is either one still queued or being scored when the run ended (the
    # last few: scoring finishes out of order) or one whose scoring failed for good.
    taken = positions(soak_dir)
    assert len(taken) == len(set(taken))
    last = max(p for _, p in taken)
    rollout = RolloutConfig()
    in_flight = report["groups_buffered_at_end"] + rollout.max_groups_scoring + rollout.prompts_per_call
    gaps = set(range(last)) - {p for _, p in taken}
    assert len([g for g in gaps if g < last - in_flight]) <= report["groups_dropped"]["scoring_failed"]
    assert report["groups_consumed"] + sum(report["groups_dropped"][k] for k in ("stale", "uniform")) == len(taken)
