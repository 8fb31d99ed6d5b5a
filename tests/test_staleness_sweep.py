"""The staleness sweep's arithmetic, grid and command line (the sweep itself trains for an hour)."""

import dataclasses

import pytest

from benchmarks import staleness
from benchmarks.staleness import PointResult, SweepPoint, summarise, sweep_points
from benchmarks.staleness_report import speed_vs_sync, sweep_table
from configs.load import load_config
from wire import metric_names as names


def _row(step: int, reward: float, stale_mean: float, stale_max: int) -> dict:
    return {
        "step": step,
        names.TIME_ELAPSED_S: 10.0 + 2.0 * step,
        names.REWARD_MEAN: reward,
        names.STALENESS_MEAN: stale_mean,
        names.STALENESS_MAX: stale_max,
        names.REPLAY_DROPPED_STALE: step // 5,
        names.CORRECTION_CORRECTED_FRACTION: 0.1 * (step % 2),
        names.CORRECTION_WEIGHT_MAX: 1.0 + step,
    }


def test_summarise_a_run():
    # 10 steps, one every 2 s; rewards 0.0, 0.1, ..., 0.9; staleness 1 on even steps, 2 on odd.
    rows = [_row(s, s / 10, 1.0 + s % 2, 1 + s % 2) for s in range(10)]
    result = summarise(SweepPoint(4, "tis"), rows, groups_per_step=8)
    # Throughput after 5 warm-up steps: from step 4's end to step 9's, 5 steps x 8 groups in 10 s.
    assert result.groups_per_s == pytest.approx(40 / 10)
    assert result.seconds_per_step == pytest.approx(2.0)
    assert result.reward_last == pytest.approx((0.8 + 0.9) / 2)  # the last 20%: 2 of 10 steps
    assert result.staleness_mean == pytest.approx(1.5) and result.staleness_max == 2
    assert result.dropped_stale == 9 // 5
    assert result.corrected_fraction == pytest.approx(0.05)  # 0.1 on the odd half
    assert result.weight_max == 10.0
    assert (result.eta, result.correction, result.seed) == (4, "tis", 0)


def test_the_grid_and_the_noise_seeds():
    points = sweep_points([0, 8], ["none", "tis"], [1, 2], also=[(8, "tis"), (2, "mask")])
    assert [p.name for p in points] == [
        "eta0-none-seed0",
        "eta0-tis-seed0",
        "eta8-none-seed0",
        "eta8-tis-seed0",
        "eta2-mask-seed0",  # (8, "tis") is in the grid already
        f"eta{staleness.NOISE_POINT[0]}-{staleness.NOISE_POINT[1]}-seed1",
        f"eta{staleness.NOISE_POINT[0]}-{staleness.NOISE_POINT[1]}-seed2",
    ]


def test_a_point_sets_eta_correction_seed_and_run_dir(tmp_path):
    config = SweepPoint(4, "decoupled", seed=3).config(load_config(None, []), tmp_path / "p")
    assert config.learner.max_staleness == 4 and config.learner.correction.kind == "decoupled"
    assert config.seed == 3 and config.run_dir == str(tmp_path / "p")
    with pytest.raises(ValueError, match="correction"):
        SweepPoint(1, "bogus").config(load_config(None, []), tmp_path)


def _result(eta: int, correction: str, seed: int, groups_per_s: float, heldout: float) -> PointResult:
    return PointResult(eta, correction, seed, groups_per_s, 8 / groups_per_s, 0.5, 1.0, 2, 0, 0.0, 1.0, heldout, 0.01)


def test_speed_against_sync_and_the_noise_line():
    results = [
        _result(0, "none", 0, 2.0, 0.8),
        _result(2, "none", 0, 3.0, 0.7),
        _result(2, "tis", 0, 3.0, 0.7),
        _result(2, "none", 1, 2.8, 0.9),
    ]
    assert speed_vs_sync(results[1], results) == pytest.approx(1.5)
    assert speed_vs_sync(results[2], results) != speed_vs_sync(results[2], results)  # nan: no eta=0 tis run
    table = sweep_table(results, 0.2, (2, "none"))
    assert "| 2 | none | 0 | 3.00 | 1.50 |" in table
    assert "initial captioner: 0.200" in table
    # The sample sd of two values a, b is |a - b| / sqrt(2): 0.2 / 1.414 = 0.141 for both pairs.
    assert "sd of groups/s 0.141" in table and "of held-out accuracy 0.141" in table


def test_the_command_needs_out_and_refuses_a_bad_correction(capsys):
    assert staleness.main(["--corrections", "none"]) == 2
    assert "out=PATH" in capsys.readouterr().err
    assert staleness.main(["out=/nonexistent", "--corrections", "none,bogus"]) == 2
    assert "correction" in capsys.readouterr().err
    assert staleness.main(["out=/nonexistent", "learner.no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err
    assert staleness.main(["out=/nonexistent", "--also", "2mask"]) == 2
    assert "eta:correction pairs such as 2:mask, got '2mask'" in capsys.readouterr().err
    assert staleness.main(["out=/nonexistent", "--etas", "0,two"]) == 2
    assert "--etas takes comma-separated integers" in capsys.readouterr().err
    assert staleness.main(["out=/nonexistent", f"learner.total_steps={staleness.WARMUP_STEPS}"]) == 2
    assert "warm-up steps" in capsys.readouterr().err


def test_results_round_trip_through_their_saved_form():
    result = _result(1, "tis", 0, 2.5, 0.75)
    assert PointResult(**dataclasses.asdict(result)) == result


def test_a_finished_sweep_re_renders_from_what_it_saved_without_training(tmp_path, monkeypatch):
    """Every point trained and evaluated before: the command writes its table and plot again
    and starts nothing (no Ray session, no training run)."""
    import json

    import driver.session

    monkeypatch.setattr(driver.session, "ray_session", lambda config: pytest.fail("a finished sweep started Ray"))
    points = sweep_points([0, 2], ["none"], [])
    for point, groups_per_s in zip(points, (2.0, 3.0)):
        (tmp_path / point.name).mkdir()
        rows = [_row(s, 0.5, float(min(s, point.eta)), min(s, point.eta)) for s in range(10)]
        (tmp_path / point.name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        staleness.save_result(tmp_path, point, _result(point.eta, "none", 0, groups_per_s, 0.7))
    (tmp_path / staleness.INITIAL_FILE).write_text(json.dumps({"accuracy": 0.25, "stderr": 0.03}))
    report = staleness.run_sweep(load_config(None, list(staleness.SWEEP_DEFAULTS)), points, tmp_path, record=False)
    assert [p["groups_per_s"] for p in report["points"]] == [2.0, 3.0]
    table = (tmp_path / "sweep.md").read_text()
    assert "| 2 | none | 0 | 3.00 | 1.50 |" in table and "initial captioner: 0.250" in table
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
