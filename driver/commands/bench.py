"""`python launch.py bench out=PATH [key=value ...]`: asynchronous against synchronous throughput
(benchmarks/pipeline.py; BENCHMARKS.md)."""

from __future__ import annotations

import argparse

from driver.job_config import add_config_arguments

HELP = "async vs sync throughput (BENCHMARKS.md)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from benchmarks.pipeline import bench

    return bench(args.config, args.overrides)
