"""`python launch.py infer --image PATH --question TEXT`: the two-stage inference of one image:
caption, tentative answer and final answer, printed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from driver.inputs import resolve_inputs
from driver.job_config import add_config_arguments, job_config
from driver.roles import start_live_pool
from driver.session import ray_session

HELP = "two-stage inference of one image"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", required=True, help="an image file")
    parser.add_argument("--question", required=True, help="the question about it")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from serve.api_images import check_image
    from serve.api_protocol import ApiError

    config = job_config(args)
    image = Path(args.image)
    if not image.is_file():
        print(f"infer: no image file at {image}", file=sys.stderr)
        return 2
    data = image.read_bytes()
    try:  # here, before anything starts: the service's own check, whose error Ray would wrap
        check_image(data, config.serve.api.max_image_pixels)
    except ApiError as err:
        print(f"infer: {image}: {err.message}", file=sys.stderr)
        return 2
    inputs = resolve_inputs(config)
    with ray_session(config):
        pool = start_live_pool(config, inputs, http=False, captioner=True)
        result = pool.infer(args.question, data, config.seed)
    print(f"caption:          {result['caption']}")
    print(f"tentative answer: {result['tentative_answer']}")
    print(f"final answer:     {result['answer']}")
    return 0
