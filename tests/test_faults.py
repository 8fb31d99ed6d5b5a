"""Faults on real runs: a driver killed mid-run and resumed; a soak that kills an actor and a
reasoner replica and sends the replay queue garbage. Nothing accepted is lost or used twice."""

import json
import time
from pathlib import Path

import pytest

from tests.test_launch import short_run


def consumed(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "consumed.jsonl").read_text().splitlines()]


def step_prompts(run_dir: Path) -> list[list[str]]:
    """Each step's prompt ids, trained on or dropped, in a fixed order."""
    return [sorted(g[2] for g in [*row["trained"], *row["dropped"]]) for row in consumed(run_dir)]


def positions(run_dir: Path) -> list[tuple[int, int]]:
    """(actor, stream position) of every group the run took, in the order it took them."""
    return [(g[0], g[1]) for row in consumed(run_dir) for g in [*row["trained"], *row["dropped"]]]


def wait_for_checkpoint(run, run_dir: Path, timeout: float = 400) -> str:
    latest = run_dir / "checkpoints" / "latest"
    deadline = time.monotonic() + timeout
    while not latest.is_file() and time.monotonic() < deadline:
        assert run.proc.poll() is None, run.output()[-3000:]
        time.sleep(0.2)
    return latest.read_text().strip()


@pytest.mark.integration
def test_a_killed_run_resumes_and_takes_exactly_the_prompts_an_uninterrupted_run_takes(tmp_path, run_launch):
    """At eta = 0 step k takes exactly the groups the gate admitted for it: stream positions
    [k * groups_per_step, (k + 1) * groups_per_step) of the one actor. A run killed (SIGKILL, all
    its processes) after its step-2 checkpoint and resumed must take the same prompts at every
    step as a run never interrupted: none skipped, none taken twice, whatever was queued or being
    scored at the kill generated again from the same prompts."""
    steps = 5
    config = ["rollout.num_actors=1", "learner.max_staleness=0", "eval.at_end=false", "learner.checkpoint_every=2"]
    whole = run_launch([*short_run(tmp_path, steps=steps, run="whole"), *config])
    code, out = whole.finish(timeout=600)
    assert code == 0, out[-3000:]

    cut_dir = tmp_path / "cut"
    cut = run_launch([*short_run(tmp_path, steps=steps, run="cut"), *config, "learner.total_steps=1000"])
    saved = int(wait_for_checkpoint(cut, cut_dir).removeprefix("version_"))
    cut.kill()  # the driver and every process of the run at once, as a crash of its machine
    assert cut.leftovers() == []
    resumed = run_launch([f"resume={cut_dir}", f"learner.total_steps={steps}"])
    code, out = resumed.finish(timeout=600)
    assert code == 0, out[-3000:]
    assert f"resuming at step {saved} (policy version {saved})" in out

    assert step_prompts(cut_dir) == step_prompts(tmp_path / "whole")
    assert positions(cut_dir) and sorted(positions(cut_dir)) == [(0, p) for p in range(steps * 2)]
    metrics = [json.loads(line) for line in (cut_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(steps))  # the metrics continue, no step twice
    assert [m["policy_version"] for m in metrics] == list(range(1, steps + 1))
    assert metrics[2]["time/elapsed_s"] > metrics[1]["time/elapsed_s"]  # the clock continues too
    summary = json.loads((cut_dir / "summary.json").read_text())
    assert summary["groups_lost"] == 0 and summary["groups_duplicated"] == 0
    assert summary["groups_consumed"] == steps * 2


@pytest.mark.integration
def test_a_soak_survives_every_fault_and_loses_nothing(tmp_path, run_launch):
    """One of each fault, staggered: garbage frames at 10 s, an actor killed at 20 s, a reasoner
    replica killed at 30 s; the soak runs 45 s and then waits for the last recoveries."""
    soak_dir = tmp_path / "soak"
    args = [
        "soak", f"out={soak_dir}", *short_run(tmp_path, steps=1)[1:],
        "soak.duration_s=45", "soak.first_fault_s=10",
        "soak.actor_kill_every_s=1000", "soak.replica_kill_every_s=1000", "soak.garbage_every_s=1000",
    ]
    code, out = run_launch(args).finish(timeout=900)
    assert code == 0, out[-3000:]
    report = json.loads((soak_dir / "soak.json").read_text())
    # garbage_frames() sends 4 frames the queue must refuse, then one too large for it.
    injected = {"malformed_frame": 4, "oversized_frame": 1, "actor_death": 1, "replica_death": 1}
    assert report["faults_injected_by_kind"] == injected
    assert report["faults_injected"] == report["faults_survived"] == sum(injected.values())
    assert report["faults_not_survived"] == {}
    assert report["groups_lost"] == 0 and report["groups_duplicated"] == 0
    for kind in injected:  # each fault is printed with its time
        assert any("fault injected at" in line and kind in line for line in out.splitlines())
    # The actor's restart regenerated what it lost: its positions taken are each taken once,
    # and any position missing below the last taken is one whose scoring failed for good.
    taken = positions(soak_dir)
    assert len(taken) == len(set(taken))
    gaps = set(range(max(p for _, p in taken))) - {p for _, p in taken}
    assert len(gaps) <= report["groups_dropped"]["scoring_failed"]
    assert report["groups_consumed"] + sum(report["groups_dropped"][k] for k in ("stale", "uniform")) == len(taken)
