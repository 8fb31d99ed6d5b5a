"""`python launch.py alternate [key=value ...]`: the roles trained in turn (policy.stages), each
with the other model frozen (driver/run.py, `alternate`)."""

from __future__ import annotations

import argparse

from driver.job_config import add_config_arguments, job_config
from driver.run import alternate

HELP = "train the roles in turn (policy.stages)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return alternate(job_config(args))
