"""A training run: its directory, the roles trained until the learner is done, its summary, its
reward plot and, at the end, its held-out evaluation; and the alternating schedule of runs."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import sys
import time
from pathlib import Path

from configs.commands import training_config
from configs.load import ConfigError, to_yaml
from configs.schema import TrainConfig
from driver.inputs import Inputs, check_reward_data, resolve_inputs
from driver.progress import follow_progress
from driver.roles import Roles, start_roles, stop_roles
from driver.session import exit_code, ray_session
from driver.tracking import start_wandb

log = logging.getLogger("launch")


def make_run_dir(config: TrainConfig) -> Path:
    run_dir = Path(config.run_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    # The training config alone: a command's own settings (bench, soak) are not the run's.
    (run_dir / "config.yaml").write_text(to_yaml(training_config(config)))
    return run_dir


def train(config: TrainConfig, watch=None) -> int:
    """A run, or with `watch` (supervisor.soak.SoakWatch) a soak, in a Ray session of its own;
    0 when done. Ctrl-C, a `kill` and a placement error propagate (driver.session.exit_code)."""
    run_dir = make_run_dir(config)
    inputs = resolve_inputs(config)
    check_reward_data(config, inputs)
    log.info("run directory: %s", run_dir)
    with ray_session(config):
        run_roles(config, inputs, run_dir, watch)
        if config.eval.at_end:
            evaluate_run(config, inputs, run_dir, run_dir / config.policy.role)
    return 0


def alternate(config: TrainConfig) -> int:
    """`alternate`: one run per stage of policy.stages, in turn, each training its role with the
    other model frozen, both models taken from the latest stage that trained them (the
    configured ones before). The stages' runs are run_dir/stage<i>-<role>; stages.json lists
    them. The first stage that does not end with 0 ends the schedule with its exit code."""
    if config.resume:
        raise ConfigError("alternate starts its stages afresh: resume one stage's run directory on its own")
    for role in config.policy.stages:  # each stage's config is checked before the first starts
        dataclasses.replace(config, policy=dataclasses.replace(config.policy, role=role))
    run_dir = make_run_dir(config)
    inputs = resolve_inputs(config)
    latest = {"captioner": inputs.captioner, "reasoner": inputs.reasoner}
    stages = []
    for index, role in enumerate(config.policy.stages):
        stage_dir = run_dir / f"stage{index}-{role}"
        stage = dataclasses.replace(
            config,
            run_dir=str(stage_dir),
            policy=dataclasses.replace(config.policy, role=role),
            models=dataclasses.replace(config.models, **latest),
        )
        frozen = "reasoner" if role == "captioner" else "captioner"
        log.info(
            "stage %d of %d: training the %s from %s (the %s frozen: %s)",
            index + 1,
            len(config.policy.stages),
            role,
            latest[role],
            frozen,
            latest[frozen],
        )
        code = exit_code(functools.partial(train, stage))
        stages.append(
            {"stage": index, "role": role, "run_dir": str(stage_dir), "started_from": dict(latest), "exit_code": code}
        )
        (run_dir / "stages.json").write_text(json.dumps(stages, indent=2))
        if code != 0:
            return code
        latest[role] = str(stage_dir / role)
    log.info("alternating schedule done: %s", run_dir / "stages.json")
    return 0


def run_roles(config: TrainConfig, inputs: Inputs, run_dir: Path, watch=None) -> None:
    """Train until the learner has done its steps (or `watch` ends it); the roles are stopped
    however it ends."""
    from supervisor.faults import FaultLog

    tracker = start_wandb(config, run_dir)  # before any role starts: W&B's own errors come first
    roles, completed = None, False
    try:
        roles = start_roles(config, inputs, run_dir)
        training = [rank.train_ref() for rank in roles.learners]
        faults = FaultLog()
        tick = watch.start(roles, faults) if watch is not None else None
        follow = (lambda: tracker.follow(roles.learners[0])) if tracker is not None else None
        follow_progress(config, roles, training, faults, tick, follow)
        if follow is not None:
            follow()  # the rows of the last steps
        log.info("done: metrics in %s", run_dir / "metrics.jsonl")
        summary = report_summary(roles, faults, run_dir / "summary.json")
        if watch is not None:
            watch.finish(summary, run_dir)
        completed = True
    finally:
        stop_roles(roles)
        plot = plot_reward(run_dir)
        if tracker is not None:
            tracker.finish(plot, completed)


def report_summary(roles: Roles, faults, path: Path) -> dict:
    """The run's account of its groups, logged and written to `path`."""
    from supervisor.summary import run_summary, summary_lines, write_summary

    summary = run_summary(roles.learners[0].accounting(), roles.gate.stats(), faults)
    write_summary(summary, path)
    for line in summary_lines(summary):
        log.info("%s", line)
    log.info("summary: %s", path)
    return summary


def plot_reward(run_dir: Path) -> Path | None:
    """The reward plot of whatever the run got through, held-out accuracy marked if evaluated."""
    from evaluation.plot import plot_run
    from evaluation.report import load_results

    plot = plot_run(run_dir, load_results(run_dir))
    if plot:
        log.info("reward plot: %s", plot)
    return plot


def evaluate_run(config: TrainConfig, inputs: Inputs, out_dir: Path, trained: Path) -> int:
    """Held-out accuracy of the initial policy (policy.role) and of `trained`, the other model
    frozen, printed and saved in `out_dir`; the engines run as Ray actors placed as the roles are
    (Ray must be running)."""
    from evaluation.pipeline import evaluate_before_after

    role = config.policy.role
    if not (trained / "config.json").exists():
        print(f"eval: no {role} checkpoint at {trained}", file=sys.stderr)
        return 2
    evaluate_before_after(config, inputs.policy(role), str(trained), inputs.frozen(role), inputs.eval_file, out_dir)
    return 0
