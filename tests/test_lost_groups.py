"""A real run whose scoring calls fail on purpose (`serve.inject_failure_prob`): groups whose
every try fails are lost, their admissions go back to the staleness gate, and the run still
completes, at eta = 0 (where one admission never returned would stall the learner) and eta = 2."""

import pytest

from learner.metrics import read_metrics
from tests.test_launch import short_run
from wire import metric_names as names

pytestmark = pytest.mark.integration

STEPS = 8
GROUPS_PER_STEP = 2  # short_run's
ATTEMPTS = 2
FAILURE_PROB = 0.6
# Each group fails all its tries with probability 0.6**2 = 0.36; the run scores at least
# STEPS * GROUPS_PER_STEP = 16 groups, so it loses none with probability <= 0.64**16 < 0.001.
# A learner waiting for an admission that never comes gives up after batch_timeout_s: far
# longer than a step here, so a run that finishes returned every lost group's place in time.
BATCH_TIMEOUT_S = 120


# eta = 2 costs another minute and a half of the default suite: run with `-m slow`.
@pytest.mark.parametrize("eta", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_a_run_with_failing_scoring_completes_and_counts_what_it_lost(tmp_path, tiny_cache, run_launch, eta):
    run = run_launch(
        [
            *short_run(tmp_path, tiny_cache, steps=STEPS),
            "eval.at_end=false",
            "rollout.num_actors=1",
            f"learner.max_staleness={eta}",
            f"learner.batch_timeout_s={BATCH_TIMEOUT_S}",
            f"serve.inject_failure_prob={FAILURE_PROB}",
            f"rollout.score_attempts={ATTEMPTS}",
            "rollout.score_retry_backoff_s=0.01",
        ]
    )
    code, out = run.finish(timeout=600)
    assert code == 0, out[-3000:]
    metrics = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(STEPS))
    assert max(m[names.STALENESS_MAX] for m in metrics) <= eta
    last = metrics[-1]
    lost = last[names.ROLLOUT_GROUPS_LOST]
    assert lost >= 1
    # A lost group failed every one of its tries; retried groups that then succeeded add more.
    assert last[names.ROLLOUT_SCORE_FAILURES] >= ATTEMPTS * lost
    # Every lost group's admission went back to the gate (besides any stale group the learner dropped).
    assert last[names.GATE_GIVEN_BACK] >= lost
    assert "giving up on scoring group of" in out
