"""`python launch.py serve [--config FILE] [key=value ...]`: the reasoner pool as a live service
(OpenAI API and demo page) until Ctrl-C, which ends it with exit code 0."""

from __future__ import annotations

import argparse
import logging
import time

from driver.inputs import resolve_inputs
from driver.job_config import add_config_arguments, job_config
from driver.roles import start_live_pool
from driver.session import ray_session

log = logging.getLogger("launch")
HELP = "the reasoner pool as a live service"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from supervisor.placement import check_placement

    config = job_config(args, serves_http=True)
    inputs = resolve_inputs(config)
    with ray_session(config):
        check_placement(config, training=False)
        start_live_pool(config, inputs, http=True, captioner=True)
        base = f"http://{config.serve.http_host}:{config.serve.http_port}"
        log.info("serving at %s: OpenAI API at %s/v1, demo page at %s/ (Ctrl-C stops it)", base, base, base)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
