"""`python launch.py keys out=DIR [actors=N]`: the learner's and the actors' ZeroMQ CURVE key
pairs (and one pair per actor with `actors`), for curve.keys_dir=DIR."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "ZeroMQ CURVE key pairs (curve.keys_dir=DIR)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "settings",
        nargs="+",
        metavar="KEY=VALUE",
        help="out=DIR (where the keys go), and optionally actors=N (one pair per actor)",
    )


def run(args: argparse.Namespace) -> int:
    from transport.curve import generate_keys

    given = dict(o.split("=", 1) for o in args.settings if "=" in o)
    if (
        "out" not in given
        or set(given) - {"out", "actors"}
        or len(given) != len(args.settings)
        or not given.get("actors", "0").isdigit()
    ):
        print("keys: give out=DIR, and optionally actors=N (one key pair per actor)", file=sys.stderr)
        return 2
    try:
        generate_keys(Path(given["out"]), int(given.get("actors", "0")))
    except FileExistsError as err:
        print(f"keys: {err}", file=sys.stderr)
        return 2
    print(f"CURVE keys in {given['out']}: set curve.keys_dir={given['out']} and make the folder readable on every node")
    return 0
