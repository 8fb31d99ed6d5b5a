"""Evaluation while training (eval.every_steps): a real run's metrics.jsonl holds the held-out
accuracy of the weights the learner published, by step, beside every learner step's row."""

import math

from learner.metrics import read_eval_points, read_metrics
from tests.test_launch import short_run
from wire import metric_names as names

STEPS, EVERY, PROMPTS, SAMPLES = 5, 2, 4, 2


def test_a_run_evaluates_its_published_weights_while_it_trains(tmp_path, tiny_cache, run_launch):
    args = [
        *short_run(tmp_path, tiny_cache, STEPS),
        f"eval.every_steps={EVERY}",
        f"eval.subset_prompts={PROMPTS}",
        f"eval.subset_samples={SAMPLES}",
        "eval.at_end=false",
    ]
    code, out = run_launch(args).finish(timeout=600)
    assert code == 0, out[-4000:]
    metrics = tmp_path / "run" / "metrics.jsonl"
    assert [row["step"] for row in read_metrics(metrics)] == list(range(STEPS))  # the steps' rows, untouched
    points = read_eval_points(metrics)
    steps = [p["step"] for p in points]
    # The initial weights, then versions at least EVERY apart (one due while the evaluator is busy
    # waits for the next publication), then the final weights.
    assert steps[0] == 0 and steps[-1] == STEPS
    assert all(b - a >= EVERY for a, b in zip(steps[:-2], steps[1:-1])) and steps == sorted(set(steps))
    for point in points:
        assert point[names.EVAL_POLICY_VERSION] == point["step"]  # weights after that many steps
        assert 0 <= point[names.EVAL_ACCURACY] <= 1 and point[names.EVAL_NUM_PROMPTS] == PROMPTS
        # An accuracy over PROMPTS prompts of SAMPLES captions is a multiple of 1 / (PROMPTS x SAMPLES).
        assert math.isclose(
            point[names.EVAL_ACCURACY] * PROMPTS * SAMPLES, round(point[names.EVAL_ACCURACY] * PROMPTS * SAMPLES)
        )
        assert point[names.EVAL_SECONDS] > 0
    published = [p[names.EVAL_ELAPSED_S] for p in points]
    assert published == sorted(published) and published[0] == 0.0
    assert (tmp_path / "run" / "reward.png").stat().st_size > 0
