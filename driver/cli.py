"""The command line: `python launch.py [COMMAND] [flags] [key=value ...]`.

Each command parses only its own flags (driver/commands); with no command, or with a first
argument that is none, it trains (`python launch.py key=value`). Exit codes: driver/session.py.
"""

from __future__ import annotations

import argparse
import logging
import sys

from driver.commands import COMMANDS
from driver.session import exit_code

DEFAULT_COMMAND = "train"


def command_parser(name: str) -> argparse.ArgumentParser:
    module = COMMANDS[name]
    parser = argparse.ArgumentParser(
        prog=f"launch.py {name}", description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    module.add_arguments(parser)
    return parser


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {module.HELP}" for name, module in COMMANDS.items()]
    return (
        "usage: launch.py [COMMAND] [flags] [key=value ...]\n\ncommands (default: train):\n"
        + "\n".join(lines)
        + ("\n\n`python launch.py COMMAND --help` shows a command's own flags.")
    )


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(usage())
        return 0
    name, rest = (argv[0], argv[1:]) if argv[:1] and argv[0] in COMMANDS else (DEFAULT_COMMAND, argv)
    # Intermixed: flags may sit between the overrides. A flag another command owns is a usage
    # error here (exit 2), not silently ignored.
    args = command_parser(name).parse_intermixed_args(rest)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return exit_code(lambda: COMMANDS[name].run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
