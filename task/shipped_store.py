"""Where the shipped build lives in the package (`task/shipped/seed<N>/`), how a cache is filled
from it and how a new build is shipped there (task/shipped.py: why, and its command line)."""

from __future__ import annotations

import json
import shutil
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
