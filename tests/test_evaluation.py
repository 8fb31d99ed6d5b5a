"""The held-out evaluation's table and the run's reward plot."""

import json
from pathlib import Path

from evaluation.heldout import EvalResult
from evaluation.plot import PLOT_FILE, _moving_average, plot_run
from evaluation.report import EVAL_JSON, format_table, load_results, save_results


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
    assert _moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]


def test_plot_is_a_png_and_skips_nulls(tmp_path: Path):
    rows = [{"step": i, "time/elapsed_s": 0.5 * i, "reward/mean": i / 10} for i in range(10)]
    rows.append({"step": 10, "time/elapsed_s": 5.0, "reward/mean": None})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = plot_run(tmp_path, [result("initial", 0.1, 0.01), result("trained", 0.9, 0.01)])
    assert out == tmp_path / PLOT_FILE
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_metrics_no_plot(tmp_path: Path):
    assert plot_run(tmp_path, []) is None
    assert not (tmp_path / PLOT_FILE).exists()
