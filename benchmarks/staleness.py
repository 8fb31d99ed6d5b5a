"""`python -m benchmarks.staleness out=PATH`: what staleness buys (throughput) and costs (accuracy).

Trains the bundled task once per point of eta (learner.max_staleness) x correction
(learner.correction.kind), plus a few more seeds of one point to show the noise between seeds
and any extra points (by default the `mask` correction at the default eta), all in one Ray
session; then evaluates every trained captioner, and the initial one, on the same held-out
prompts. Writes PATH/sweep.json, PATH/sweep.md (the table, also printed) and
PATH/sweep.png (reward against steps and against time; held-out accuracy against throughput).
A point whose PATH/<point>/point.json exists is not trained again, nor evaluated again once
its held-out accuracy is in it: an interrupted sweep resumes, and a finished one re-renders its
table and plot without training. With --record, the table and plot go into BENCHMARKS.md and docs/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import platform
import shutil
import statistics
import sys
from pathlib import Path

from benchmarks.pipeline import split_out, with_changes
from benchmarks.report import fifth, write_section_with_plot
from benchmarks.stages import measured_rate
from benchmarks.staleness_report import plot_sweep, sweep_table
from benchmarks.sweep_points import PointResult, SweepPoint
from configs.schema import TrainConfig
from learner.metrics import read_metrics
from wire import metric_names as names

log = logging.getLogger("staleness")
ETAS = (0, 1, 2, 4, 8)
CORRECTIONS = ("none", "tis", "decoupled")
# The sweep's setting, before the command line's overrides (which win). Chosen so that 18 runs fit
# in an hour on 2 cores and staleness really occurs: with one actor the pipeline holds about one
# step of groups (staleness ~1.5 even at eta = 8); two actors keep about two (mean 1.9-2.3).
SWEEP_DEFAULTS = (
    "learner.total_steps=45",
    "rollout.num_actors=2",
    "eval.max_prompts=96",
    "eval.samples_per_prompt=2",
    "eval.every_steps=0",
)
WARMUP_STEPS = 5  # left out of the throughput: roles still loading, first weight pushes
NOISE_POINT = (2, "none")  # the default eta and correction, trained with more seeds
NOISE_SEEDS = (1, 2)
ALSO = ((2, "mask"),)  # outside the grid, so that every correction trains the task once
PLOT = Path("docs/staleness-sweep.png")  # in the repository, as BENCHMARKS.md links it
INITIAL_FILE = "initial_eval.json"  # held-out accuracy of the initial captioner, in `out`


def summarise(point: SweepPoint, rows: list[dict], groups_per_step: int) -> PointResult:
    last = fifth(rows, last=True)
    rate = measured_rate(rows, WARMUP_STEPS, groups_per_step)
    return PointResult(
        eta=point.eta,
        correction=point.correction,
        seed=point.seed,
        groups_per_s=rate.groups_per_s,
        seconds_per_step=rate.seconds / (rate.groups / groups_per_step),
        reward_last=statistics.fmean(r[names.REWARD_MEAN] for r in last),
        staleness_mean=statistics.fmean(r[names.STALENESS_MEAN] for r in rows),
        staleness_max=max(int(r[names.STALENESS_MAX]) for r in rows),
        dropped_stale=int(rows[-1][names.REPLAY_DROPPED_STALE]),
        corrected_fraction=statistics.fmean(r[names.CORRECTION_CORRECTED_FRACTION] for r in rows),
        weight_max=max(r[names.CORRECTION_WEIGHT_MAX] for r in rows),
    )


def sweep_points(etas, corrections, noise_seeds, also=()) -> list[SweepPoint]:
    grid = [SweepPoint(eta, correction) for eta in etas for correction in corrections]
    extra = [
        SweepPoint(eta, correction)
        for eta, correction in also
        if (eta, correction) not in {(p.eta, p.correction) for p in grid}
    ]
    return grid + extra + [SweepPoint(*NOISE_POINT, seed=seed) for seed in noise_seeds]


def saved_result(out: Path, point: SweepPoint) -> PointResult | None:
    saved = out / point.name / "point.json"
    return PointResult(**json.loads(saved.read_text())) if saved.exists() else None


def save_result(out: Path, point: SweepPoint, result: PointResult) -> PointResult:
    (out / point.name / "point.json").write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n")
    return result


def train_point(config: TrainConfig, inputs, point: SweepPoint, out: Path) -> PointResult:
    from driver.run import make_run_dir, run_roles

    run_dir = out / point.name
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an interrupted run of this point: start it again
    point_config = point.config(config, run_dir)
    make_run_dir(point_config)
    log.info("training %s", point.name)
    run_roles(point_config, inputs, run_dir)
    return save_result(
        out, point, summarise(point, read_metrics(run_dir / "metrics.jsonl"), config.learner.groups_per_step)
    )


def evaluate_points(config: TrainConfig, inputs, points: list[SweepPoint], out: Path) -> None:
    """Held-out accuracy of the initial captioner (INITIAL_FILE) and of each point's (its point.json)."""
    from evaluation.pipeline import evaluate_captioners

    captioners = [("initial", inputs.captioner)] + [(p.name, str(out / p.name / "captioner")) for p in points]
    initial, *trained = evaluate_captioners(config, captioners, inputs.reasoner, inputs.eval_file)
    (out / INITIAL_FILE).write_text(json.dumps({"accuracy": initial.accuracy, "stderr": initial.stderr}) + "\n")
    for point, evaluated in zip(points, trained):
        save_result(
            out,
            point,
            dataclasses.replace(saved_result(out, point), heldout=evaluated.accuracy, heldout_stderr=evaluated.stderr),
        )


def train_and_evaluate(config: TrainConfig, points: list[SweepPoint], out: Path) -> None:
    """Train the points not trained yet in `out` and evaluate those not evaluated yet; one Ray session."""
    from driver.inputs import resolve_inputs
    from driver.session import ray_session

    saved = {point: saved_result(out, point) for point in points}
    to_train = [point for point, result in saved.items() if result is None]
    to_evaluate = [point for point, result in saved.items() if result is None or math.isnan(result.heldout)]
    if len(to_train) < len(saved):
        log.info("%d of %d points read back from %s", len(saved) - len(to_train), len(saved), out)
    if not to_evaluate and (out / INITIAL_FILE).exists():
        return
    inputs = resolve_inputs(config)
    with ray_session(config):
        for point in to_train:
            train_point(config, inputs, point, out)
        evaluate_points(config, inputs, to_evaluate, out)


def run_sweep(config: TrainConfig, points: list[SweepPoint], out: Path, record: bool) -> dict:
    config = with_changes(config, eval={"at_end": False})  # the sweep evaluates every run at its end
    print(
        f"staleness sweep: {len(points)} runs of {config.learner.total_steps} steps, {config.rollout.num_actors} "
        "actor(s), "
        f"{config.learner.groups_per_step} groups of {config.rollout.group_size} per step"
    )
    out.mkdir(parents=True, exist_ok=True)
    train_and_evaluate(config, points, out)
    results = [saved_result(out, point) for point in points]
    initial = json.loads((out / INITIAL_FILE).read_text())["accuracy"]
    report = {
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "steps": config.learner.total_steps,
        "settings": {
            "rollout.num_actors": config.rollout.num_actors,
            "learner.groups_per_step": config.learner.groups_per_step,
            "eval.max_prompts": config.eval.max_prompts,
            "eval.samples_per_prompt": config.eval.samples_per_prompt,
        },
        "initial_heldout": initial,
        "points": [dataclasses.asdict(r) for r in results],
    }
    (out / "sweep.json").write_text(json.dumps(report, indent=2) + "\n")
    table = sweep_table(results, initial, NOISE_POINT)
    (out / "sweep.md").write_text(table + "\n")
    plot = plot_sweep(out, points, results, out / "sweep.png")
    print(table)
    if record:
        command = f"python -m benchmarks.staleness out={os.path.relpath(out)} --record"
        alt = "reward and held-out accuracy per eta and correction"
        write_section_with_plot("Staleness: eta x correction", command, report["machine"], table, plot, PLOT, alt)
    return report


def main(argv: list[str]) -> int:
    from driver.session import exit_code

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--etas", default=",".join(map(str, ETAS)), help="comma-separated eta values")
    parser.add_argument("--corrections", default=",".join(CORRECTIONS), help="comma-separated correction kinds")
    parser.add_argument(
        "--noise-seeds",
        default=",".join(map(str, NOISE_SEEDS)),
        help=f"more seeds of eta={NOISE_POINT[0]}, {NOISE_POINT[1]} ('' for none)",
    )
    parser.add_argument(
        "--also",
        default=",".join(f"{e}:{c}" for e, c in ALSO),
        help="extra eta:correction points outside the grid ('' for none)",
    )
    parser.add_argument("--record", action="store_true", help="write the table and plot into BENCHMARKS.md and docs/")
    parser.add_argument("overrides", nargs="*", help="out=PATH, then config key=value overrides")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out, overrides = split_out(args.overrides, "staleness")
    if out is None:
        return 2
    return exit_code(lambda: _sweep(args, out, overrides))


def _sweep(args: argparse.Namespace, out: Path, overrides: list[str]) -> int:
    """The sweep's points checked before an hour of training, then the sweep; its exit code."""
    from configs.load import ConfigError, load_config

    config = load_config(args.config, [*SWEEP_DEFAULTS, *overrides])
    try:
        points = sweep_points(
            _ints(args.etas, "--etas"),
            _words(args.corrections),
            _ints(args.noise_seeds, "--noise-seeds"),
            _pairs(args.also),
        )
        for point in points:  # a bad eta or correction fails here, not after an hour of training
            point.config(config, Path("."))
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if config.learner.total_steps <= WARMUP_STEPS:
        raise ConfigError(f"learner.total_steps must exceed the sweep's {WARMUP_STEPS} warm-up steps")
    run_sweep(config, points, out, args.record)
    return 0


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(part) for part in _words(text)]
    except ValueError:
        raise ValueError(f"{option} takes comma-separated integers, got {text!r}") from None


def _pairs(text: str) -> list[tuple[int, str]]:
    """`--also`: eta:correction pairs, e.g. "2:mask,4:tis"."""
    pairs = []
    for word in _words(text):
        eta, colon, correction = word.partition(":")
        if not colon or not eta.isdigit() or not correction:
            raise ValueError(f"--also takes eta:correction pairs such as 2:mask, got {word!r}")
        pairs.append((int(eta), correction))
    return pairs


def _words(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
