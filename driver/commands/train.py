"""`python launch.py [train] [--config FILE] [key=value ...]`: the main job; `resume=RUN_DIR`
continues a run from its latest checkpoint."""

from __future__ import annotations

import argparse

from driver.job_config import add_config_arguments, job_config
from driver.run import train

HELP = "train the policy (the default command); resume=RUN_DIR continues a run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return train(job_config(args))
