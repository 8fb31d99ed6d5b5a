"""`python launch.py bench out=PATH`: asynchronous against synchronous training, and against the
pipeline's own limit, on one config and the same resources.

In one Ray session, one after the other: each stage alone (benchmarks.stages), synchronous
training (eta = 0: the same code path, the gate holding the actors to the current version), and
asynchronous training at the configured eta. Every role's processes are pinned to its cores
(`bench.*_cores`), so that roles on different cores model separate devices; then synchronous and
asynchronous training again with every role on every core, as a user's run has them. Writes
PATH/bench.json and PATH/bench.md (the table, also printed); with bench.record=true, also the
table's section of BENCHMARKS.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.bench_results import (
    Layout,
    RunResult,
    UnpinnedRuns,
    bench_report,
    bench_table,
)
from benchmarks.processes import (
    MemorySampler,
    busy_fractions,
    cpu_mark,
)
from benchmarks.report import write_section
from benchmarks.stages import (
    StageRate,
    generation_alone,
    learner_alone,
    measured_rate,
    scoring_alone,
    with_rewards,
)
from configs.commands import BenchCommandConfig
from learner.metrics import read_metrics
from wire.metric_names import STALENESS_MEAN
from wire.weights import WeightSource

if TYPE_CHECKING:
    from coordination.handles import LearnerHandle, RolloutHandle

log = logging.getLogger("bench")
# How often the driver looks at the learner's progress during a timed run.
POLL_S = 0.25
# bench.hold_policy: Adam's steps are about lr in size, far below float32's resolution of weights near 1e-3.
HELD_LR = 1e-20


def with_changes(config: BenchCommandConfig, **sections: dict) -> BenchCommandConfig:
    """`config` with some fields of some sections replaced (validated again)."""
    changed = {name: dataclasses.replace(getattr(config, name), **fields) for name, fields in sections.items()}
    return dataclasses.replace(config, **changed)


def timed_run(
    config: BenchCommandConfig,
    inputs,
    run_dir: Path,
    layout: Layout,
    memory: MemorySampler,
    name: str,
    pinned: bool = True,
) -> RunResult:
    """A training run of warm-up + measured steps; CPU and memory marked at the end of warm-up and of
    the last step. `pinned` False: the roles share every core, as in a user's run."""
    import ray

    from driver.roles import start_roles, stop_roles
    from driver.run import make_run_dir

    config = dataclasses.replace(config, run_dir=str(run_dir))
    make_run_dir(config)
    roles = None
    try:
        roles = start_roles(config, inputs, run_dir)
        ray.get([actor.stats_ref() for actor in roles.actors])  # built (they run meanwhile)
        if pinned:
            layout.pin_roles()
        training = [rank.train_ref() for rank in roles.learners]
        marks = _follow(roles, training, config, memory, name)
        ray.get(training)
    finally:
        stop_roles(roles)
    rows = read_metrics(run_dir / "metrics.jsonl")
    measured = rows[config.bench.warmup_steps :]
    return RunResult(
        rate=measured_rate(rows, config.bench.warmup_steps, config.learner.groups_per_step),
        busy=busy_fractions(*marks, layout.cores),
        staleness_mean=sum(r[STALENESS_MEAN] for r in measured) / len(measured),
    )


def _follow(roles, training: list, config: BenchCommandConfig, memory: MemorySampler, name: str):
    """Wait for the run's last step, marking CPU and memory after warm-up and at the last step."""
    import ray
    from tqdm import tqdm

    last = config.learner.total_steps - 1
    start = None
    with tqdm(total=config.learner.total_steps, desc=f"{name} steps", unit="step", dynamic_ncols=True) as bar:
        while True:
            done, _ = ray.wait(training + roles.runs, num_returns=1, timeout=POLL_S)
            if done and not set(done) & set(training):
                ray.get(done)
                raise RuntimeError("a rollout actor stopped before the learner finished")
            step = roles.learners[0].latest_metrics().step
            if step + 1 > bar.n:
                bar.update(step + 1 - bar.n)
            if start is None and step >= config.bench.warmup_steps - 1:
                start = cpu_mark()
                memory.mark(f"{name}_warm")
            if step >= last or done:
                end = cpu_mark()
                memory.mark(f"{name}_end")
                return start or end, end


def measure_stages(config: BenchCommandConfig, inputs, out: Path, layout: Layout) -> dict[str, StageRate]:
    """Generation, scoring and learning, each alone on its processes and cores."""
    import ray
    from ray import serve

    from actors.start import start_rollout_actors
    from driver.session import worker_env
    from learner.start import start_learner
    from serve.pool import start_reasoner_pool
    from vlm.processor import load_captioner_processor
    from vlm.sampling import caption_sampling_spec

    sampling = caption_sampling_spec(config.rollout.sampling, load_captioner_processor(inputs.captioner).tokenizer)
    rollout, env = config.rollout, worker_env()
    # As many groups as the timed training steps use.
    calls = math.ceil(
        config.bench.steps * config.learner.groups_per_step / (rollout.num_actors * rollout.prompts_per_call)
    )
    # Generating alone, the actors never send groups nor take weights.
    actors = start_rollout_actors(
        rollout, inputs.captioner, sampling, inputs.train_file, (), WeightSource("zmq", ()), "", None, env, config.seed
    )
    try:
        ray.get([a.stats_ref() for a in actors])  # built
        layout.pin_roles(("rollout",))
        log.info("stage alone: generation (%d calls per actor)", calls)
        generation, generated = generation_alone(actors, calls)
    finally:
        _kill(actors)
    start_reasoner_pool(config.serve, inputs.reasoner, config.seed, reward=config.reward)
    try:
        layout.pin_roles(("serve",))
        log.info("stage alone: scoring (%d groups)", len(generated))
        in_flight = rollout.num_actors * rollout.max_groups_scoring
        scoring, results = scoring_alone(config.serve.app_name, [request for request, _ in generated], in_flight)
    finally:
        serve.shutdown()
    # The queue is filled with groups that are never too stale; a broadcast would wait for actors.
    alone = with_changes(
        config,
        learner={"max_staleness": 10**9, "weight_sync": dataclasses.replace(config.learner.weight_sync, backend="zmq")},
    )
    run_dir = out / "learner_alone"
    run_dir.mkdir(parents=True, exist_ok=True)
    learners, ready = start_learner(
        alone.learner, inputs.captioner, str(run_dir), sampling, rollout.num_actors, None, env, config.seed
    ).ready()
    try:
        layout.pin_roles(("learner",))
        log.info("stage alone: learner (%d steps)", alone.learner.total_steps)
        learning = learner_alone(
            learners, ready.replay_endpoint, with_rewards([g for _, g in generated], results), alone, run_dir
        )
    finally:
        _kill(learners)
    return {"generation": generation, "scoring": scoring, "learner": learning}


def _kill(handles: list[RolloutHandle] | list[LearnerHandle]) -> None:
    """Close the roles' engines (30 s in all), then end their actors."""
    import ray

    try:
        ray.get([h.close_ref() for h in handles], timeout=30)
    finally:
        for handle in handles:
            ray.kill(handle.actor)


def run_bench(config: BenchCommandConfig, layout: Layout, out: Path) -> dict:
    """The whole benchmark; returns what it wrote to out/bench.json."""
    from driver.inputs import resolve_inputs
    from driver.session import ray_session

    bench = config.bench
    learner = {"total_steps": bench.warmup_steps + bench.steps}
    if bench.hold_policy:
        learner["lr"] = HELD_LR
    config = with_changes(config, eval={"at_end": False, "every_steps": 0}, learner=learner)
    print(
        f"bench: {bench.warmup_steps} warm-up + {bench.steps} measured steps of {config.learner.groups_per_step} "
        f"groups; resources:\n{layout.describe()}"
    )
    out.mkdir(parents=True, exist_ok=True)
    inputs = resolve_inputs(config)
    with ray_session(config), MemorySampler() as memory:
        stages = measure_stages(config, inputs, out, layout)
        sync = timed_run(
            with_changes(config, learner={"max_staleness": 0}), inputs, out / "sync", layout, memory, "sync"
        )
        asynchronous = timed_run(config, inputs, out / "async", layout, memory, "async")
        unpinned = UnpinnedRuns(
            timed_run(
                with_changes(config, learner={"max_staleness": 0}),
                inputs,
                out / "sync_unpinned",
                layout,
                memory,
                "sync_unpinned",
                False,
            ),
            timed_run(config, inputs, out / "async_unpinned", layout, memory, "async_unpinned", False),
            _with_eval_run(config, inputs, out, layout, memory),
        )
    report = bench_report(config, layout, stages, sync, asynchronous, memory.memory, unpinned)
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    table = bench_table(report)
    (out / "bench.md").write_text(table + "\n")
    print(table)
    if bench.record:
        write_section(
            "Pipeline: asynchronous against synchronous",
            f"python launch.py bench out={os.path.relpath(out)} bench.record=true",
            report["machine"],
            table,
        )
    return report


def _with_eval_run(
    config: BenchCommandConfig, inputs, out: Path, layout: Layout, memory: MemorySampler
) -> RunResult | None:
    """The unpinned asynchronous run evaluating while it trains; None where it would not evaluate."""
    every = config.bench.eval_every_steps
    if not every or not inputs.eval_file or config.policy.role != "captioner":
        return None
    evaluating = with_changes(config, eval={"every_steps": every})
    return timed_run(evaluating, inputs, out / "async_unpinned_eval", layout, memory, "async_unpinned_eval", False)


def split_out(overrides: list[str], command: str) -> tuple[Path | None, list[str]]:
    """A benchmark's `out=PATH` (None, after saying why, unless given exactly once) and the config overrides."""
    outs = [o.removeprefix("out=") for o in overrides if o.startswith("out=")]
    if len(outs) != 1 or not outs[0]:
        print(f"{command}: give the output folder once, as out=PATH", file=sys.stderr)
        return None, []
    return Path(outs[0]).resolve(), [o for o in overrides if not o.startswith("out=")]


def bench(config_file: str | None, overrides: list[str]) -> int:
    """`python launch.py bench [--config FILE] out=PATH [key=value ...]`: the benchmark's exit code."""
    from configs.load import ConfigError, load_config

    out, overrides = split_out(overrides, "bench")
    if out is None:
        return 2
    config = load_config(config_file, overrides, BenchCommandConfig)
    if config.policy.role != "captioner":
        raise ConfigError("the throughput benchmark measures the captioner as the policy: drop policy.role")
    try:
        layout = Layout.of(config)
    except ValueError as err:  # cores that cannot be laid out as asked: a config error
        raise ConfigError(str(err)) from err
    run_bench(config, layout, out)
    return 0


def main(argv: list[str]) -> int:
    """`python -m benchmarks.pipeline [--config FILE] out=PATH [key=value ...]`, as `launch.py bench`."""
    import argparse

    from driver.session import exit_code

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return exit_code(lambda: bench(args.config, args.overrides))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
