"""`python launch.py soak out=PATH [key=value ...]`: train for soak.duration_s under injected
faults; PATH/soak.json (and with soak.record the Reliability section of BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from configs.commands import SoakCommandConfig, training_config
from configs.load import ConfigError
from driver.inputs import resolve_inputs
from driver.job_config import add_config_arguments, expand_short_keys, job_config
from driver.run import train

HELP = "train under injected faults (soak.json)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from benchmarks.reliability import main as record_reliability
    from records.vqa import read_records
    from supervisor.poison import PoisonSpec
    from supervisor.soak import SoakWatch

    args.overrides = expand_short_keys(args.overrides, "soak", ("out",))
    config = job_config(args, schema=SoakCommandConfig)
    if not config.soak.out:
        raise ConfigError("soak needs out=PATH (where soak.json and the run go)")
    config = dataclasses.replace(
        config,
        run_dir=config.soak.out,
        resume="",
        learner=dataclasses.replace(config.learner, total_steps=10**9),  # the clock ends it
        eval=dataclasses.replace(config.eval, at_end=False),
    )
    first_prompt = read_records(Path(resolve_inputs(config).train_file))[0].id
    poison = PoisonSpec(config.rollout.group_size, config.rollout.sampling.max_new_tokens, first_prompt)
    train(training_config(config), SoakWatch(config.soak, config.serve.app_name, poison))
    return record_reliability([config.soak.out]) if config.soak.record else 0
