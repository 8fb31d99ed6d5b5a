"""The time-to-accuracy benchmark: its arithmetic (hand-worked) and, slow, a whole run on the tiny task."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.time_to_accuracy import RunCurve, _settings, main
from benchmarks.tta_report import speedups, tta_table

ROOT = Path(__file__).resolve().parents[1]


def curve(seed: int, elapsed: list[float], accuracy: list[float], eta: int = 0) -> RunCurve:
    return RunCurve(eta, "none", seed, elapsed, [10 * i for i in range(len(elapsed))], accuracy, groups_per_s=1.0)


def test_a_run_reaches_the_target_at_its_first_evaluation_at_or_above_it():
    run = curve(0, [0.0, 30.0, 60.0, 90.0], [0.2, 0.86, 0.8, 0.9])
    assert run.reached(0.85) == (30.0, 10)  # the first crossing counts, even if a later point dips
    assert run.reached(0.95) is None
    assert run.final == 0.9


def test_speed_ups_are_taken_seed_by_seed_and_a_miss_stays_a_miss():
    baseline = [curve(0, [0, 100], [0.2, 0.9]), curve(1, [0, 120], [0.2, 0.9]), curve(2, [0, 90], [0.2, 0.5])]
    faster = [curve(0, [0, 50], [0.2, 0.9], 2), curve(1, [0, 80], [0.2, 0.9], 2), curve(2, [0, 40], [0.2, 0.9], 2)]
    # 100 / 50 and 120 / 80; seed 2's baseline never got there, so that seed has no ratio.
    assert speedups(baseline, faster, 0.85) == [2.0, 1.5, None]
    table = tta_table({"eta=0, none": baseline, "eta=2, none": faster}, 0.85)
    row = next(line for line in table.splitlines() if line.startswith("| eta=2"))
    # Mean of 2.0 and 1.5, over the 2 seeds both reached; the faster setting's mean time (50+80+40)/3.
    assert "1.75x (1.50-2.00), 2 of 3 seeds" in row and "| 3 of 3 |" in row and "57: 50 / 80 / 40" in row
    base_row = next(line for line in table.splitlines() if line.startswith("| eta=0"))
    assert "100 / 120 / not reached" in base_row and "| 2 of 3 |" in base_row and base_row.endswith("| - |")


def test_settings_are_read_as_eta_correction_pairs():
    assert [(s.eta, s.correction) for s in _settings("0:none, 2:decoupled")] == [(0, "none"), (2, "decoupled")]
    with pytest.raises(ValueError, match="eta:correction"):
        _settings("2-decoupled")


def test_a_bad_setting_fails_before_any_training(tmp_path, capsys):
    assert main([f"out={tmp_path}", "--settings", "0:none,2:sideways"]) == 2
    assert "correction" in capsys.readouterr().err


@pytest.mark.slow
def test_the_benchmark_runs_and_writes_its_table_and_plot(tmp_path):
    """Two settings, one seed, a few steps of the tiny task: every stage of the command, not its numbers."""
    from tests.tiny_task import TINY_TASK_OVERRIDES

    out = tmp_path / "tta"
    command = [
        sys.executable,
        "-m",
        "benchmarks.time_to_accuracy",
        f"out={out}",
        "--settings",
        "0:none,2:decoupled",
        "--seeds",
        "0",
        "--target",
        "0.01",
        f"task.cache_dir={tmp_path / 'cache'}",
        *TINY_TASK_OVERRIDES,
        "learner.total_steps=6",
        "learner.groups_per_step=2",
        "rollout.group_size=4",
        "rollout.sampling.max_new_tokens=8",
        "eval.every_steps=2",
        "eval.subset_prompts=4",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "tta.json").read_text())
    assert {(r["eta"], r["correction"]) for r in report["runs"]} == {(0, "none"), (2, "decoupled")}
    for run in report["runs"]:
        assert run["steps"][0] == 0 and run["steps"][-1] == 6 and run["elapsed_s"] == sorted(run["elapsed_s"])
    assert (out / "tta.png").stat().st_size > 0 and "times sooner than eta=0, none" in (out / "tta.md").read_text()
