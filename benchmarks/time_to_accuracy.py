"""`python -m benchmarks.time_to_accuracy out=PATH [--record]`: wall-clock time to a held-out
accuracy, synchronous against asynchronous.

Trains the bundled task once per setting (eta = learner.max_staleness, with a correction) and run
seed, all in one Ray session, each run measuring its held-out accuracy while it trains
(eval.every_steps, on a fixed subset of the eval split). For each setting: the seconds and learner
steps until a run's held-out accuracy first reaches the target ("not reached" when it never does),
its final accuracy, its groups per second, and how many times sooner than eta = 0 it got there
(seed by seed, then the mean and the spread). Writes PATH/tta.json, PATH/tta.md (the table, also
printed) and PATH/tta.png (held-out accuracy against wall-clock time: the mean over seeds and
their spread, per setting); --record puts the table and plot in BENCHMARKS.md and docs/. A run
whose PATH/<run>/tta_run.json exists is not trained again: an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.pipeline import split_out
from benchmarks.report import machine, write_section_with_plot
from benchmarks.stages import measured_rate
from benchmarks.sweep_points import SweepPoint
from benchmarks.tta_report import plot_tta, tta_table
from configs.schema import TrainConfig
from learner.metrics import read_eval_points, read_metrics
from wire import metric_names as names

log = logging.getLogger("time_to_accuracy")
SETTINGS = ((0, "none"), (2, "none"), (2, "decoupled"), (4, "decoupled"))
SEEDS = (0, 1, 2)
TARGET = 0.85
# Long enough for every setting to pass the target (a default run is at ~0.9 by step 100), with
# an evaluation every 10 steps (about 10 s apart) on 64 held-out prompts x 2 captions.
TTA_DEFAULTS = (
    "learner.total_steps=120",
    "eval.every_steps=10",
    "eval.subset_prompts=64",
    "eval.subset_samples=2",
    "eval.at_end=false",
)
WARMUP_STEPS = 5  # left out of groups/s: roles still loading
PLOT = Path("docs/time-to-accuracy.png")
RUN_FILE = "tta_run.json"


@dataclass(frozen=True)
class Setting:
    eta: int
    correction: str

    @property
    def label(self) -> str:
        return f"eta={self.eta}, {self.correction}"

    def run(self, seed: int) -> SweepPoint:
        """This setting's run of `seed`: a point of the staleness sweep (its config and run name)."""
        return SweepPoint(self.eta, self.correction, seed)


@dataclass(frozen=True)
class RunCurve:
    """One run's held-out accuracy while it trained, and its speed."""

    eta: int
    correction: str
    seed: int
    elapsed_s: list[float]  # when each evaluated version was published
    steps: list[int]
    accuracy: list[float]
    groups_per_s: float

    def reached(self, target: float) -> tuple[float, int] | None:
        """(seconds, steps) at the first evaluation at or above `target`; None if none was."""
        return next(((s, n) for s, n, a in zip(self.elapsed_s, self.steps, self.accuracy) if a >= target), None)

    @property
    def final(self) -> float:
        return self.accuracy[-1]


def curve_of(setting: Setting, seed: int, run_dir: Path, groups_per_step: int) -> RunCurve:
    metrics = run_dir / "metrics.jsonl"
    points = read_eval_points(metrics)
    if not points:
        raise RuntimeError(f"{run_dir}: the run evaluated nothing while training (eval.every_steps?)")
    rate = measured_rate(read_metrics(metrics), WARMUP_STEPS, groups_per_step)
    return RunCurve(
        setting.eta,
        setting.correction,
        seed,
        [p[names.EVAL_ELAPSED_S] for p in points],
        [p["step"] for p in points],
        [p[names.EVAL_ACCURACY] for p in points],
        rate.groups_per_s,
    )


def train_runs(
    config: TrainConfig, settings: list[Setting], seeds: list[int], out: Path
) -> dict[tuple[Setting, int], RunCurve]:
    """Every (setting, seed) run's curve: read back from `out`, else trained (one Ray session)."""
    from driver.inputs import resolve_inputs
    from driver.run import make_run_dir, run_roles
    from driver.session import ray_session

    curves, missing = {}, []
    for setting in settings:
        for seed in seeds:
            saved = out / setting.run(seed).name / RUN_FILE
            if saved.exists():
                curves[(setting, seed)] = RunCurve(**json.loads(saved.read_text()))
            else:
                missing.append((setting, seed))
    if not missing:
        return curves
    inputs = resolve_inputs(config)
    with ray_session(config):
        for index, (setting, seed) in enumerate(missing):
            run_dir = out / setting.run(seed).name
            if run_dir.exists():
                shutil.rmtree(run_dir)  # an interrupted run: start it again
            run_config = setting.run(seed).config(config, run_dir)
            make_run_dir(run_config)
            log.info("run %d of %d: %s", index + 1, len(missing), run_dir.name)
            run_roles(run_config, inputs, run_dir)
            curve = curve_of(setting, seed, run_dir, config.learner.groups_per_step)
            (run_dir / RUN_FILE).write_text(json.dumps(dataclasses.asdict(curve), indent=2) + "\n")
            curves[(setting, seed)] = curve
    return curves


def run_benchmark(
    config: TrainConfig, settings: list[Setting], seeds: list[int], target: float, out: Path, record: bool
) -> dict:
    print(
        f"time to accuracy: {len(settings)} settings x {len(seeds)} seeds, {config.learner.total_steps} steps each, "
        f"target held-out accuracy {target}"
    )
    out.mkdir(parents=True, exist_ok=True)
    curves = train_runs(config, settings, seeds, out)
    by_setting = {s.label: [curves[(s, seed)] for seed in seeds] for s in settings}
    report = {
        "machine": machine(),
        "target": target,
        "steps": config.learner.total_steps,
        "eval": {
            "every_steps": config.eval.every_steps,
            "subset_prompts": config.eval.subset_prompts,
            "subset_samples": config.eval.subset_samples,
        },
        "runs": [dataclasses.asdict(c) for c in curves.values()],
    }
    (out / "tta.json").write_text(json.dumps(report, indent=2) + "\n")
    table = tta_table(by_setting, target)
    (out / "tta.md").write_text(table + "\n")
    plot = plot_tta(by_setting, target, out / "tta.png")
    print(table)
    if record:
        command = f"python -m benchmarks.time_to_accuracy out={os.path.relpath(out)} --record"
        alt = "held-out accuracy against wall-clock time per setting"
        write_section_with_plot("Time to accuracy", command, report["machine"], table, plot, PLOT, alt)
    return report


def main(argv: list[str]) -> int:
    from driver.session import exit_code

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument(
        "--settings",
        default=",".join(f"{e}:{c}" for e, c in SETTINGS),
        help="comma-separated eta:correction pairs; the first is the baseline the others are compared with",
    )
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="comma-separated run seeds")
    parser.add_argument("--target", type=float, default=TARGET, help="the held-out accuracy to reach")
    parser.add_argument("--record", action="store_true", help="write the table and plot into BENCHMARKS.md and docs/")
    parser.add_argument("overrides", nargs="*", help="out=PATH, then config key=value overrides")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out, overrides = split_out(args.overrides, "time_to_accuracy")
    if out is None:
        return 2
    return exit_code(lambda: _benchmark(args, out, overrides))


def _benchmark(args: argparse.Namespace, out: Path, overrides: list[str]) -> int:
    """The settings checked before an hour of training, then the benchmark; its exit code."""
    from configs.load import ConfigError, load_config

    config = load_config(args.config, [*TTA_DEFAULTS, *overrides])
    try:
        settings, seeds = _settings(args.settings), _seeds(args.seeds)
        for setting in settings:  # a bad eta or correction fails here, not after an hour of training
            setting.run(0).config(config, Path("."))
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if not config.eval.every_steps or not 0 < args.target <= 1:
        raise ConfigError("the benchmark needs eval.every_steps > 0 and a --target in (0, 1]")
    run_benchmark(config, settings, seeds, args.target, out, args.record)
    return 0


def _settings(text: str) -> list[Setting]:
    settings = []
    for word in (w.strip() for w in text.split(",") if w.strip()):
        eta, colon, correction = word.partition(":")
        if not colon or not eta.isdigit() or not correction:
            raise ValueError(f"--settings takes eta:correction pairs such as 2:decoupled, got {word!r}")
        settings.append(Setting(int(eta), correction))
    if not settings:
        raise ValueError("--settings names no setting")
    return settings


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise ValueError(f"--seeds takes comma-separated integers, got {text!r}") from None
    if not seeds:
        raise ValueError("--seeds names no seed")
    return seeds


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
