"""The held-out evaluation's table, the run's reward plot, and runs compared."""

import json
from pathlib import Path

import pytest

from evaluation.compare import format_runs, summarise
from evaluation.heldout import EvalResult
from evaluation.plot import PLOT_FILE, moving_average, plot_run
from evaluation.report import EVAL_JSON, format_table, load_results, save_results
from wire import metric_names as names


def result(label: str, accuracy: float, stderr: float) -> EvalResult:
    return EvalResult(label, f"/ckpt/{label}", accuracy, stderr, 256, 4, 12.5, 3.0)


def test_table_shows_each_captioner_and_the_change_with_its_error():
    table = format_table([result("initial", 0.5, 0.03), result("trained", 0.8, 0.04)])
    lines = table.splitlines()
    assert lines[2].startswith("| initial | 0.500 | 0.030 | 256 x 4 | 12.5 |")
    assert lines[3].startswith("| trained | 0.800 | 0.040 |")
    # 0.8 - 0.5 = +0.300; independent errors: sqrt(0.03^2 + 0.04^2) = 0.05.
    assert lines[4].startswith("| change | +0.300 | 0.050 |")


def test_results_round_trip_through_the_run_directory(tmp_path: Path):
    results = [result("initial", 0.25, 0.02), result("trained", 0.75, 0.02)]
    save_results(results, tmp_path)
    assert load_results(tmp_path) == results
    assert json.loads((tmp_path / EVAL_JSON).read_text())[1]["accuracy"] == 0.75
    assert load_results(tmp_path / "absent") == []


def test_moving_average_uses_what_it_has_at_the_start():
    # Window 2: [1], [1, 3], [3, 5], [5, 7].
    assert moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]


def test_plot_is_a_png_and_skips_nulls(tmp_path: Path):
    rows = [{"step": i, names.TIME_ELAPSED_S: 0.5 * i, names.REWARD_MEAN: i / 10} for i in range(10)]
    rows.append({"step": 10, names.TIME_ELAPSED_S: 5.0, names.REWARD_MEAN: None})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = plot_run(tmp_path, [result("initial", 0.1, 0.01), result("trained", 0.9, 0.01)])
    assert out == tmp_path / PLOT_FILE
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_metrics_no_plot(tmp_path: Path):
    assert plot_run(tmp_path, []) is None
    assert not (tmp_path / PLOT_FILE).exists()


def write_run(run_dir: Path, rewards: list[float]) -> Path:
    run_dir.mkdir()
    rows = [
        {"step": i, names.REWARD_MEAN: r, names.STALENESS_MEAN: 1.0, names.TIME_ELAPSED_S: 2.0 * i}
        for i, r in enumerate(rewards)
    ]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return run_dir


def test_a_run_summary_takes_its_edges_and_its_best_window(tmp_path: Path):
    # 25 steps: 0 on steps 0-4, 1 on 5-22, 0 on 23-24. First 20% = 5 steps, all 0 -> 0.0; last 5
    # (20-24) = [1, 1, 1, 0, 0] -> 0.6. A 20-step window from step s holds the ones of 5..22 it
    # covers: 15, 16, 17, then 18 from s = 3 on -> best 18 / 20 = 0.9, first reached at step 3.
    run = summarise(write_run(tmp_path / "a", [0.0] * 5 + [1.0] * 18 + [0.0] * 2))
    assert (run.steps, run.reward_first, run.reward_last) == (25, 0.0, pytest.approx(0.6))
    assert (run.best_window, run.best_window_start) == (pytest.approx(0.9), 3)
    assert (run.staleness_mean, run.seconds, run.held_out) == (1.0, 48.0, [])


def test_the_comparison_table_states_the_spread_over_runs(tmp_path: Path):
    # Second run all 0.5. First-20% means 0.0 and 0.5: mean 0.25, sample sd sqrt(2 * 0.25^2) = 0.354.
    first = write_run(tmp_path / "a", [0.0] * 5 + [1.0] * 18 + [0.0] * 2)
    save_results([result("initial", 0.2, 0.02), result("trained", 0.9, 0.01)], first)
    second = write_run(tmp_path / "b", [0.5] * 25)
    table = format_runs([summarise(first), summarise(second)]).splitlines()
    assert table[2].startswith(
        "| a | 0.000 | 0.600 | 0.900 (from step 3) | 0.200 ± 0.020 → 0.900 ± 0.010 | 1.00 | 25 | 48 s |"
    )
    assert table[3].split(" | ")[4] == "not evaluated"
    assert table[4].startswith("| mean ± sd | 0.250 ± 0.354 |")


def test_a_run_without_steps_is_named(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match="empty: no learner step"):
        summarise(empty)
