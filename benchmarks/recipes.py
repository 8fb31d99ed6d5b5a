"""`python -m benchmarks.recipes out=PATH [--record]`: each seed method's recipe, side by side.

Runs the recipe (docs/rewards-and-recipes.md) for each seed method on the bundled task (RACRO's verifiable answers,
CapRL's multiple choice, Perception-R1's judge beside the verifiable reward, Perceive-to-Reason's
alternating schedule) for three run seeds each, and writes PATH/recipes.json and PATH/recipes.md
(the table, also printed): held-out accuracy before and after with standard errors, the training
reward over the first and the last 20% of the steps, and the method's blind baseline, the reward
a caption that says nothing earns (benchmarks/blind_baseline.py). For the alternating schedule the
reward columns are its captioner stage's, the stage whose reward the blind baseline is about (the
reasoner stage's reward is that of the captions its first stage learned to write); its held-out
accuracy runs from before the first stage to after the last. A method learns on a seed when its
held-out accuracy rises by more than three standard errors of the difference and its last
training reward beats the blind baseline by more than three standard errors of that mean.
A run whose results are saved (PATH/<method>-seed<N>/result.json) is not run again. With
--record the table goes into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.pipeline import split_out
from benchmarks.recipe_report import recipe_table
from benchmarks.report import fifth, machine, write_section
from wire import metric_names as names

log = logging.getLogger("recipes")
SEEDS = (0, 1, 2)
# Shorter than a default run, as the slow learning tests are: 12 trainings (15 with the
# alternating schedule's second stages) then fit in about an hour on 2 cores.
RECIPE_DEFAULTS = ("learner.total_steps=60", "eval.max_prompts=128", "eval.every_steps=0")  # evaluated before and after
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class Recipe:
    """A seed method as the recipe table of docs/rewards-and-recipes.md writes it:
    `python launch.py <command> <overrides>`."""

    method: str
    paper: str
    command: str  # "train" or "alternate"
    overrides: tuple[str, ...]


RECIPES = (
    Recipe("verifiable answers", "RACRO", "train", ()),
    Recipe(
        "multiple choice",
        "CapRL",
        "train",
        ("reward.kind=mcq", "reward.shaping.length_budget=24", "reward.shaping.length_penalty=0.5"),
    ),
    Recipe(
        "judge and verifiable",
        "Perception-R1",
        "train",
        (
            "reward.weights.verifiable=0.5",
            "reward.weights.judge=0.5",
            "reward.judge.target=caption",
            "reward.shaping.repetition_ngram=3",
            "reward.shaping.repetition_penalty=0.5",
        ),
    ),
    Recipe("alternating roles", "Perceive-to-Reason", "alternate", ("policy.stages=[captioner,reasoner]",)),
)


@dataclass(frozen=True)
class RunResult:
    """One recipe on one seed: what it learned, and what a caption saying nothing would earn."""

    paper: str
    seed: int
    heldout_before: float
    heldout_before_stderr: float
    heldout_after: float
    heldout_after_stderr: float
    reward_first: float  # mean reward over the first 20% of the (first stage's) steps
    reward_last: float  # ... and the last 20%
    reward_last_stderr: float  # its standard error over those steps
    blind: float  # the reward of a caption that says nothing, under this recipe's reward

    @property
    def learned(self) -> bool:
        noise = 3 * math.hypot(self.heldout_before_stderr, self.heldout_after_stderr)
        return (
            self.heldout_after - self.heldout_before > noise
            and self.reward_last - self.blind > 3 * self.reward_last_stderr
        )


def run_name(recipe: Recipe, seed: int) -> str:
    return f"{recipe.paper.lower()}-seed{seed}"


def recipe_config(base_overrides: list[str], recipe: Recipe, seed: int, run_dir: Path):
    from configs.load import load_config

    return load_config(
        None, [*RECIPE_DEFAULTS, *recipe.overrides, *base_overrides, f"seed={seed}", f"run_dir={run_dir}"]
    )


def train_recipe(recipe: Recipe, config) -> None:
    from driver.run import alternate, train

    code = alternate(config) if recipe.command == "alternate" else train(config)
    if code != 0:
        raise RuntimeError(f"{recipe.paper} (seed {config.seed}) ended with exit code {code}")


def stage_dirs(recipe: Recipe, run_dir: Path) -> list[Path]:
    """The run directories that hold the recipe's metrics and evaluations, in order."""
    if recipe.command != "alternate":
        return [run_dir]
    return [Path(stage["run_dir"]) for stage in json.loads((run_dir / "stages.json").read_text())]


def summarise(recipe: Recipe, seed: int, run_dir: Path, blind: float) -> RunResult:
    from evaluation.report import load_results
    from learner.metrics import read_metrics

    stages = stage_dirs(recipe, run_dir)
    rewards = [row[names.REWARD_MEAN] for row in read_metrics(stages[0] / "metrics.jsonl")]
    initial, trained = load_results(stages[0])[0], load_results(stages[-1])[-1]
    last = fifth(rewards, last=True, least=2)
    return RunResult(
        paper=recipe.paper,
        seed=seed,
        heldout_before=initial.accuracy,
        heldout_before_stderr=initial.stderr,
        heldout_after=trained.accuracy,
        heldout_after_stderr=trained.stderr,
        reward_first=statistics.fmean(fifth(rewards, last=False, least=2)),
        reward_last=statistics.fmean(last),
        reward_last_stderr=statistics.stdev(last) / math.sqrt(len(last)),
        blind=blind,
    )


def run_recipes(overrides: list[str], out: Path, seeds: tuple[int, ...], record: bool) -> list[RunResult]:
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for recipe in RECIPES:
        blind = None
        for seed in seeds:
            run_dir = out / run_name(recipe, seed)
            saved = run_dir / RESULT_FILE
            if saved.exists():
                results.append(RunResult(**json.loads(saved.read_text())))
                continue
            config = recipe_config(overrides, recipe, seed, run_dir)
            log.info(
                "%s, seed %d: python launch.py %s %s", recipe.paper, seed, recipe.command, " ".join(recipe.overrides)
            )
            train_recipe(recipe, config)
            blind = blind if blind is not None else _blind(config)
            result = summarise(recipe, seed, run_dir, blind)
            saved.write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n")
            results.append(result)
    report(results, out, overrides, record)
    return results


def _blind(config) -> float:
    """The blind baseline under the first stage's reward (the captioner's, in every recipe)."""
    from benchmarks.blind_baseline import caption_rewards
    from driver.inputs import resolve_inputs

    inputs = resolve_inputs(config)
    return caption_rewards(config, inputs.reasoner, inputs.eval_file).blind


def report(results: list[RunResult], out: Path, overrides: list[str], record: bool) -> None:
    rows = [{**dataclasses.asdict(r), "learned": r.learned} for r in results]
    settings = [*RECIPE_DEFAULTS, *overrides]
    (out / "recipes.json").write_text(
        json.dumps({"machine": machine(), "settings": settings, "runs": rows}, indent=2) + "\n"
    )
    table = recipe_table(results, {r.paper: r for r in RECIPES})
    (out / "recipes.md").write_text(table + "\n")
    print(table)
    if record:
        command = f"python -m benchmarks.recipes out={os.path.relpath(out)} --record {' '.join(overrides)}".strip()
        write_section("Recipes: each seed method on the bundled task", command, machine(), table)


def main(argv: list[str]) -> int:
    from driver.session import exit_code

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="comma-separated run seeds")
    parser.add_argument("--record", action="store_true", help="write the table into BENCHMARKS.md")
    parser.add_argument("overrides", nargs="*", help="out=PATH, then config key=value overrides for every run")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out, overrides = split_out(args.overrides, "recipes")
    if out is None:
        return 2
    return exit_code(lambda: _benchmark(args, out, overrides))


def _benchmark(args: argparse.Namespace, out: Path, overrides: list[str]) -> int:
    """Every recipe's config checked before an hour of training, then the runs; 1 if a method
    did not learn on some seed."""
    from configs.load import ConfigError

    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
        for recipe in RECIPES:  # a bad override fails here, not after an hour of training
            recipe_config(overrides, recipe, seeds[0], out / "check")
    except ValueError as err:
        raise ConfigError(str(err)) from err
    results = run_recipes(overrides, out, seeds, args.record)
    return 0 if all(r.learned for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
