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
import shutil
import sys
from pathlib import Path

SHIPPED = Path(__file__).resolve().parent / "shipped"
RECIPE_FILE = "recipe.json"
MODELS = ("captioner", "reasoner", "reasoner_partial")
QUALITY_FILE = "warm_start.json"


def shipped_root(recipe: dict) -> Path | None:
    """The shipped build of `recipe`, if there is one."""
    root = SHIPPED / f"seed{recipe['seed']}"
    recipe_file = root / RECIPE_FILE
    if recipe_file.exists() and json.loads(recipe_file.read_text()) == recipe:
        return root
    return None


def copy_models(source: Path, target: Path) -> None:
    """The checkpoints and the warm start's quality, from one build folder to another."""
    for name in MODELS:
        shutil.copytree(source / name, target / name)
    shutil.copyfile(source / QUALITY_FILE, target / QUALITY_FILE)


def ship(build_root: Path, recipe: dict) -> Path:
    """Copy a finished build (made from `recipe`) into the package, replacing what was shipped for its seed."""
    root = SHIPPED / f"seed{recipe['seed']}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    copy_models(build_root, root)
    (root / RECIPE_FILE).write_text(json.dumps(recipe, indent=2, sort_keys=True) + "\n")
    return root


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
    if verb == "check" and not (SHIPPED / f"seed{task.seed}" / QUALITY_FILE).exists():
        print(f"nothing is shipped for task.seed={task.seed} to compare with", file=sys.stderr)
        return 2
    recipe = build_recipe(task.seed, task.num_train, task.num_eval, task.warm_start)
    built = ensure_bundled_task(Path(task.cache_dir).expanduser(), task.seed, task.num_train, task.num_eval, task.warm_start,
                                rebuild=verb == "check")
    if verb == "ship":
        print(f"shipped {ship(built.root, recipe)}")
        return 0
    gaps = quality_gaps(json.loads((built.root / QUALITY_FILE).read_text()), json.loads((SHIPPED / f"seed{task.seed}" / QUALITY_FILE).read_text()))
    for gap in gaps:
        print(gap)
    print("a fresh build reaches the shipped build's quality" if not gaps else "a fresh build falls short of the shipped one")
    return 1 if gaps else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
