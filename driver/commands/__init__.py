"""The CLI's commands, one module each: `HELP`, its own flags (`add_arguments`) and what it
runs (`run`, returning the exit code or raising what `driver.session.exit_code` turns into one).

This package and `driver.cli` are the composition root: they may import the benchmarks (`bench`,
`soak`'s record), which compose the rest of `driver`.
"""

from __future__ import annotations

from types import ModuleType

from driver.commands import alternate, bench, build, check_data, evaluate, infer, keys, serve, soak, train

COMMANDS: dict[str, ModuleType] = {
    "train": train,
    "alternate": alternate,
    "serve": serve,
    "infer": infer,
    "eval": evaluate,
    "check-data": check_data,
    "build": build,
    "bench": bench,
    "soak": soak,
    "keys": keys,
}
