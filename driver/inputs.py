"""The files a job reads: the user's data and checkpoints, or the bundled task built on first use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from configs.load import ConfigError
from configs.schema import TrainConfig


class DataError(ValueError):
    """A data file cannot be read, or holds no usable row; the message names the file."""


@dataclass(frozen=True)
class Inputs:
    """The resolved files a run needs."""

    train_file: str
    eval_file: str
    captioner: str
    reasoner: str

    def policy(self, role: str) -> str:
        """The checkpoint of the model that learns (policy.role)."""
        return self.reasoner if role == "reasoner" else self.captioner

    def frozen(self, role: str) -> str:
        """The checkpoint of the other model, frozen and served by the pool."""
        return self.captioner if role == "reasoner" else self.reasoner


def resolve_inputs(config: TrainConfig, rebuild: bool = False) -> Inputs:
    """The user's files and checkpoints (task.kind=files: the config's checks made sure they are
    named); or the bundled task, built and cached on first use, where a checkpoint named in
    `models.*` replaces its tiny model of the same role."""
    task, models = config.task, config.models
    if task.kind == "files":
        # The filters select training rows; the held-out split is evaluated as given.
        eval_file = prepared_data(config, task.eval_file, filtered=False) if task.eval_file else ""
        return Inputs(
            prepared_data(config, task.train_file, filtered=True), eval_file, models.captioner, models.reasoner
        )
    from task.bundle import ensure_bundled_task

    if task.exclude_sources or task.categories:
        raise ConfigError("task.exclude_sources and task.categories filter your data files: they need task.kind=files")
    bundle = ensure_bundled_task(
        Path(task.cache_dir).expanduser(), task.seed, task.num_train, task.num_eval, task.warm_start, rebuild
    )
    return Inputs(
        train_file=str(bundle.train_file),
        eval_file=str(bundle.eval_file),
        captioner=models.captioner or str(bundle.captioner),
        reasoner=models.reasoner
        or str(bundle.partial_reasoner if task.bundled_reasoner == "partial" else bundle.reasoner),
    )


def prepared_data(config: TrainConfig, path: str, filtered: bool) -> str:
    """The records file the roles read, made from the user's data file `path` (records/prepare.py),
    with `filtered` the rows task.exclude_sources and task.categories select."""
    from records.prepare import RecordFilter, prepare_records

    task = config.task
    record_filter = RecordFilter.of(task.exclude_sources, task.categories) if filtered else RecordFilter()
    try:
        prepared = prepare_records(Path(path), Path(task.cache_dir), record_filter, task.max_image_pixels)
    except (OSError, ValueError) as err:
        raise DataError(str(err)) from err
    if prepared.kept == 0:
        raise DataError(
            f"{path}: no usable row ({prepared.filtered_out} left out by the filter, {len(prepared.problems)} unusable)"
        )
    return str(prepared.records_file)


def check_reward_data(config: TrainConfig, inputs: Inputs) -> None:
    """Fail before anything starts if the reward needs what the training records lack."""
    if "mcq" in config.reward.mix():
        from records.vqa import read_records

        records = read_records(Path(inputs.train_file))
        missing = sum(not r.questions for r in records)
        if missing:
            raise DataError(
                f"reward.kind=mcq asks each image's multiple-choice questions, but {missing} of the {len(records)} "
                f"training records have none (the records' `questions`)"
            )
