"""Weights & Biases beside TensorBoard (driver/tracking.py), offline: every metrics row the learner
writes reaches the W&B run, evaluations logged after later steps included."""

import importlib.util

import pytest

from configs.load import ConfigError, load_config
from coordination.reports import MetricsRows
from driver.tracking import INSTALL_HINT, STEP_KEY, WandbRun, check_wandb
from learner.metrics import read_eval_points, read_metrics, rows_after
from tests.wandb_records import history, offline_run_file
from wire import metric_names as names


class _Learner:
    """Rank 0's metrics rows, read from the file as the learner's handle reads them."""

    def __init__(self, path):
        self.path = path

    def metrics_rows(self, offset: int) -> MetricsRows:
        return MetricsRows(*rows_after(self.path, offset))


def test_followed_rows_are_logged_once_each_by_learner_step(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 0, "reward/mean": 0.25}\n{"step": 1, "reward/mean": 0.5}\n{"step": 2, "rew')
    run = WandbRun(load_config(overrides=["logging.wandb=true"]), tmp_path)
    learner = _Learner(metrics)
    run.follow(learner)  # two complete rows; the third is still being written
    with metrics.open("a") as file:  # the rest of it, then an evaluation of step 1 after step 2
        file.write('ard/mean": 0.75}\n{"step": 1, "eval/accuracy": 0.6}\n')
    run.follow(learner)
    run.follow(learner)  # nothing new
    run.finish(None, completed=True)
    logged = history(offline_run_file(tmp_path))
    assert [(row[STEP_KEY], row.get(names.REWARD_MEAN), row.get(names.EVAL_ACCURACY)) for row in logged] == [
        (0, 0.25, None),
        (1, 0.5, None),
        (2, 0.75, None),
        (1, None, 0.6),
    ]
    assert run.logged == 4


def test_a_row_still_being_written_is_left_for_the_next_read(tmp_path):
    # A run's metrics are read while its learner writes them (tests, the launcher's progress).
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 0, "reward/mean": 0.25}\n{"step": 0, "eval/accuracy": 0.5}\n{"step": 1, "rew')
    assert read_metrics(metrics) == [{"step": 0, "reward/mean": 0.25}]
    assert read_eval_points(metrics) == [{"step": 0, "eval/accuracy": 0.5}]


def test_without_wandb_installed_the_key_is_refused_with_the_install_hint(monkeypatch):
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else found(name, *a))
    check_wandb(load_config())  # off: nothing to check
    with pytest.raises(ConfigError, match="logging.wandb=true needs the wandb package") as refused:
        check_wandb(load_config(overrides=["logging.wandb=true"]))
    assert INSTALL_HINT in str(refused.value)
