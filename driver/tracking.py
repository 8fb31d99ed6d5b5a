"""Weights & Biases beside TensorBoard (`logging.wandb=true`): the driver logs every learner step's
metrics as the run goes, the run's config at its start and its reward plot at the end, into one
W&B run named for the run directory, its files under RUN_DIR/wandb/.

The driver does it, not the learner: every metrics row reaches it over Ray wherever the learner
runs, the reward plot is made here, and the API key (WANDB_API_KEY) is needed only where the user
starts the command. WANDB_MODE=offline writes the run with no network (`wandb sync` uploads it).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from pathlib import Path

from configs.load import ConfigError
from configs.schema import TrainConfig
from coordination.handles import LearnerHandle
from learner.metrics import plotted
from wire import metric_names as names

log = logging.getLogger("launch")
INSTALL_HINT = 'pip install -e ".[wandb]"'
# Every metric is plotted against the learner step it belongs to: an evaluation while training
# arrives after later steps were logged, which W&B's own step counter would refuse.
STEP_KEY = "learner_step"


def check_wandb(config: TrainConfig) -> None:
    """Refuse logging.wandb=true where wandb is not installed, before anything starts."""
    if config.logging.wandb and importlib.util.find_spec("wandb") is None:
        raise ConfigError(f"logging.wandb=true needs the wandb package: {INSTALL_HINT}")


class WandbRun:
    """One W&B run for one training run."""

    def __init__(self, config: TrainConfig, run_dir: Path):
        import wandb

        self._run = wandb.init(
            project=config.logging.wandb_project,
            name=run_dir.name,
            dir=str(run_dir),
            config=dataclasses.asdict(config),
            reinit="finish_previous",
        )
        self._run.define_metric(STEP_KEY)
        self._run.define_metric("*", step_metric=STEP_KEY)
        self.logged = 0
        self._offset = 0  # into the learner's metrics.jsonl

    def follow(self, learner: LearnerHandle) -> None:
        """Log the rows learner rank 0 wrote since the last call."""
        new = learner.metrics_rows(self._offset)
        self._offset = new.offset
        self.log(new.rows)

    def log(self, rows: list[dict]) -> None:
        """Metrics rows as metrics.jsonl holds them (a step's, or an evaluation's while training)."""
        for row in rows:  # as read back from metrics.jsonl, where NaN is null: not plotted
            self._run.log({STEP_KEY: int(row[names.STEP]), **plotted(row)})
            self.logged += 1

    def finish(self, plot: Path | None, completed: bool) -> None:
        """The reward plot, and the run marked finished (or failed: stopped or broken off)."""
        import wandb

        if plot is not None and plot.is_file():
            self._run.log({"reward_plot": wandb.Image(str(plot))})
        self._run.finish(exit_code=0 if completed else 1)
        log.info("Weights & Biases: %d rows logged, files under %s", self.logged, Path(self._run.dir).parent.parent)


def start_wandb(config: TrainConfig, run_dir: Path) -> WandbRun | None:
    return WandbRun(config, run_dir) if config.logging.wandb else None
