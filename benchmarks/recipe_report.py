"""The recipes benchmark's table (benchmarks/recipes.py): one row per recipe and seed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def recipe_table(results: Sequence, recipes: Mapping) -> str:
    """Markdown: held-out accuracy before -> after (± standard error), training reward first -> last
    20% of the steps, the blind baseline, and whether the recipe learned on that seed."""
    lines = [
        "| method | paper | seed | held-out accuracy | training reward, first → last 20% | blind baseline | learned |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        recipe = recipes[r.paper]
        lines.append(
            f"| {recipe.method} | {r.paper} | {r.seed} "
            f"| {r.heldout_before:.3f} ± {r.heldout_before_stderr:.3f} → {r.heldout_after:.3f} ± "
            f"{r.heldout_after_stderr:.3f} "
            f"| {r.reward_first:.3f} → {r.reward_last:.3f} ± {r.reward_last_stderr:.3f} | {r.blind:.3f} "
            f"| {'yes' if r.learned else 'no'} |"
        )
    return "\n".join(lines)
