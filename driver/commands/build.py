"""`python launch.py build [key=value ...]`: rebuild the bundled task from task.seed (data, tiny
models, warm starts), whatever is cached."""

from __future__ import annotations

import argparse
import logging

from configs.load import ConfigError
from driver.inputs import resolve_inputs
from driver.job_config import add_config_arguments, job_config

log = logging.getLogger("launch")
HELP = "rebuild the bundled task"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config = job_config(args)
    if config.task.kind != "bundled":
        raise ConfigError("`build` builds the bundled task; this config has task.kind=files")
    log.info("bundled task rebuilt: %s", resolve_inputs(config, rebuild=True))
    return 0
