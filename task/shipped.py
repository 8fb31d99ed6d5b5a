"""The bundled task as built, shipped with the code: a first run needs no hour-long build.

`task/shipped/seed<N>/` holds what `python launch.py build` made for the default settings with
task.seed=N: the captioner, the reasoner and the partial reasoner (their checkpoints, ~10 MB),
the warm start's quality on held-out scenes, and the recipe it was built from (build format,
seed, dataset sizes, warm-start settings). The dataset itself is not shipped: it regenerates
from the seed in seconds, exactly. A cache whose recipe matches a shipped one is filled from it;
any other recipe is built, and `launch.py build` always builds from scratch (to reproduce the
shipped bundle, or to check that a fresh build reaches its quality: `python -m task.shipped
check`). `python -m task.shipped ship` copies the cache's build into the package after a
`launch.py build` of a new build format.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from task import shipped_store


def main(argv: list[str]) -> int:
    """`ship`: the configured (by default: the default settings') cached build into the package;
    `check`: build afresh and compare its quality with the shipped build's."""
    from configs.load import ConfigError, load_config
    from task.bundle import build_recipe, ensure_bundled_task, quality_gaps

    if not argv or argv[0] not in ("ship", "check"):
        print("usage: python -m task.shipped ship|check [key=value ...]", file=sys.stderr)
        return 2
    try:
        verb, task = argv[0], load_config(overrides=argv[1:]).task
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    if verb == "check" and not (shipped_store.SHIPPED / f"seed{task.seed}" / shipped_store.QUALITY_FILE).exists():
        print(f"nothing is shipped for task.seed={task.seed} to compare with", file=sys.stderr)
        return 2
    recipe = build_recipe(task.seed, task.num_train, task.num_eval, task.warm_start)
    built = ensure_bundled_task(
        Path(task.cache_dir).expanduser(),
        task.seed,
        task.num_train,
        task.num_eval,
        task.warm_start,
        rebuild=verb == "check",
    )
    if verb == "ship":
        print(f"shipped {shipped_store.ship(built.root, recipe)}")
        return 0
    gaps = quality_gaps(
        json.loads((built.root / shipped_store.QUALITY_FILE).read_text()),
        json.loads((shipped_store.SHIPPED / f"seed{task.seed}" / shipped_store.QUALITY_FILE).read_text()),
    )
    for gap in gaps:
        print(gap)
    print(
        "a fresh build reaches the shipped build's quality"
        if not gaps
        else "a fresh build falls short of the shipped one"
    )
    return 1 if gaps else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
