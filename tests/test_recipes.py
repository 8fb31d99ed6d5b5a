"""The recipes benchmark (benchmarks/recipes.py): when a recipe counts as learned, its table, that
its recipes are those docs/rewards-and-recipes.md gives, and the blind baseline scored as the pool scores."""

import math
from pathlib import Path

from benchmarks.blind_baseline import CONTENT_FREE, caption_rewards
from benchmarks.recipe_report import recipe_table
from benchmarks.recipes import RECIPES, RunResult
from configs.load import load_config
from task.bundle import ensure_bundled_task
from tests.tiny_task import TINY_WARM_START

RECIPES_PAGE = (Path(__file__).resolve().parents[1] / "docs" / "rewards-and-recipes.md").read_text()


def result(before: float, after: float, last: float, blind: float) -> RunResult:
    # Standard errors 0.03 and 0.04 on the accuracies: their difference's is 0.05, so more
    # than 3 x 0.05 = 0.15 is beyond noise; the last reward's is 0.01, so it must beat the
    # blind baseline by more than 0.03.
    return RunResult("RACRO", 0, before, 0.03, after, 0.04, 0.1, last, 0.01, blind)


def test_a_recipe_learned_when_accuracy_and_reward_both_clear_their_noise():
    assert result(0.20, 0.36, 0.50, 0.46).learned
    assert not result(0.20, 0.35, 0.50, 0.46).learned  # +0.15 is not beyond 3 x 0.05
    assert not result(0.20, 0.60, 0.49, 0.46).learned  # +0.03 over the blind baseline is not beyond 0.03


def test_rewards_are_compared_over_the_first_and_last_fifth_of_the_steps():
    from benchmarks.report import fifth

    rows = list(range(12))  # 12 // 5 = 2 rows each
    assert fifth(rows, last=False) == [0, 1] and fifth(rows, last=True) == [10, 11]
    assert fifth(rows[:4], last=True) == [3] and fifth(rows[:4], last=True, least=2) == [2, 3]


def test_the_table_has_a_row_per_run():
    table = recipe_table([result(0.2, 0.6, 0.5, 0.1)], {r.paper: r for r in RECIPES})
    assert (
        "| verifiable answers | RACRO | 0 | 0.200 ± 0.030 → 0.600 ± 0.040 | 0.100 → 0.500 ± 0.010 | 0.100 | yes |"
        in table
    )


def test_every_recipe_is_the_documented_command():
    for recipe in RECIPES:
        command = " ".join(
            ["python launch.py", *([recipe.command] if recipe.command != "train" else []), *recipe.overrides]
        )
        assert f"`{command}`" in RECIPES_PAGE, command


def test_content_free_captions_are_scored_as_the_pool_scores(tmp_path):
    bundle = ensure_bundled_task(tmp_path / "cache", seed=0, num_train=8, num_eval=4, warm_start=TINY_WARM_START)
    config = load_config(
        None, ["serve.samples_per_caption=2", "reward.weights.verifiable=0.5", "reward.weights.mcq=0.5"]
    )
    rewards = caption_rewards(config, str(bundle.reasoner), str(bundle.eval_file), records=4)
    assert set(rewards.mean) == {*CONTENT_FREE, "faithful"}
    # The empty caption gets no reasoner call and no shaping term here: exactly 0.
    assert rewards.mean["empty"] == 0.0 and rewards.stderr["empty"] == 0.0
    assert all(0.0 <= value <= 1.0 and not math.isnan(value) for value in rewards.mean.values())
    assert rewards.blind == max(rewards.mean[kind] for kind in CONTENT_FREE)
