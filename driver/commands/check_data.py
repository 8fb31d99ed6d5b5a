"""`python launch.py check-data FILE [key=value ...]`: a data file's unusable rows, each with why;
exit 1 if any."""

from __future__ import annotations

import argparse
from pathlib import Path

from configs.load import load_config
from driver.inputs import DataError
from driver.job_config import add_config_arguments

HELP = "a data file's unusable rows, with why"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a data file: .jsonl, .parquet, or a benchmark's .json / .tsv")
    add_config_arguments(parser)  # its task.* filters and image bound apply


def run(args: argparse.Namespace) -> int:
    from records.data_check import check_data_file, format_check
    from records.prepare import RecordFilter

    task = load_config(args.config, args.overrides).task
    try:
        check = check_data_file(
            Path(args.file), RecordFilter.of(task.exclude_sources, task.categories), task.max_image_pixels
        )
    except (OSError, ValueError) as err:
        raise DataError(str(err)) from err
    print(format_check(check))
    return 1 if check.problems else 0
