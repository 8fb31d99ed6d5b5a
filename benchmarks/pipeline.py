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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.processes import (
    MemorySampler,
    busy_fractions,
    cpu_mark,
    pin,
    role_processes,
    titled_processes,
)
from benchmarks.report import machine, write_section
from benchmarks.stages import (
    StageRate,
    generation_alone,
    learner_alone,
    measured_rate,
    scoring_alone,
    with_rewards,
)
from configs.commands import BenchCommandConfig, parse_cores
from learner.metrics import read_metrics
from wire.metric_names import STALENESS_MEAN
from wire.weights import WeightSource

if TYPE_CHECKING:
    from coordination.handles import LearnerHandle, RolloutHandle

log = logging.getLogger("bench")
ROLES = ("learner", "rollout", "serve")
STAGE_ROLE = {"generation": "rollout", "scoring": "serve", "learner": "learner"}
# How often the driver looks at the learner's progress during a timed run.
POLL_S = 0.25
# bench.hold_policy: Adam's steps are about lr in size, far below float32's resolution of weights near 1e-3.
HELD_LR = 1e-20
# How long pinning waits for a phase's processes to be exactly those it expects.
PIN_WAIT_S = 60.0


@dataclass(frozen=True)
class Layout:
    """Where each role runs: its cores and processes, as the bench pins and prints them."""

    cores: dict[str, tuple[int, ...]]
    processes: dict[str, int]
    torch_threads: dict[str, int]

    @classmethod
    def of(cls, config: BenchCommandConfig) -> Layout:
        bench = config.bench
        cores = {role: parse_cores(getattr(bench, f"{role}_cores")) for role in ROLES}
        available = os.sched_getaffinity(0)
        for role, wanted in cores.items():
            missing = sorted(set(wanted) - available)
            if missing:
                raise ValueError(
                    f"bench.{role}_cores names cores {missing} this machine does not have (it has {sorted(available)})"
                )
        return cls(
            cores=cores,
            processes={
                "learner": config.learner.num_ranks,
                "rollout": config.rollout.num_actors,
                "serve": config.serve.num_replicas,
            },
            torch_threads={
                "learner": config.learner.torch_threads,
                "rollout": config.rollout.torch_threads,
                "serve": config.serve.torch_threads,
            },
        )

    def describe(self) -> str:
        return "\n".join(
            f"  {role:8s} {self.processes[role]} process(es), cores {','.join(map(str, self.cores[role]))}, "
            f"{self.torch_threads[role]} torch thread(s) each"
            for role in ROLES
        )

    def pin_roles(self, roles: tuple[str, ...] = ROLES) -> None:
        """Pin the processes of `roles`, which must all be up (built) by now; the previous
        phase's processes, killed, may take a few seconds to go."""
        deadline = time.monotonic() + PIN_WAIT_S
        while True:
            titled = titled_processes()
            wrong = {role: len(titled[role]) for role in roles if len(titled[role]) != self.processes[role]}
            if not wrong:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"bench: found {wrong} processes to pin, expected {self.processes}")
            time.sleep(0.5)
        for role, processes in role_processes().items():
            if role in roles:
                pin(processes, self.cores[role])


def with_changes(config: BenchCommandConfig, **sections: dict) -> BenchCommandConfig:
    """`config` with some fields of some sections replaced (validated again)."""
    changed = {name: dataclasses.replace(getattr(config, name), **fields) for name, fields in sections.items()}
    return dataclasses.replace(config, **changed)


@dataclass(frozen=True)
class RunResult:
    rate: StageRate
    busy: dict[str, float]
    staleness_mean: float


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


def core_limit(stages: dict[str, StageRate], layout: Layout) -> float:
    """The pipeline's limit where stages share cores: stages pinned to the same cores split them,
    so those cores do one group in the sum of the stages' times per group."""
    seconds_per_group: dict[tuple[int, ...], float] = {}
    for stage, rate in stages.items():
        cores = layout.cores[STAGE_ROLE[stage]]
        seconds_per_group[cores] = seconds_per_group.get(cores, 0.0) + 1 / rate.groups_per_s
    return 1 / max(seconds_per_group.values())


@dataclass(frozen=True)
class UnpinnedRuns:
    """The runs with every role on every core, as a user's run has them."""

    sync: RunResult
    asynchronous: RunResult
    with_eval: RunResult | None  # asynchronous again, evaluating while it trains (bench.eval_every_steps)


def bench_report(
    config: BenchCommandConfig,
    layout: Layout,
    stages: dict[str, StageRate],
    sync: RunResult,
    asynchronous: RunResult,
    memory,
    unpinned: UnpinnedRuns,
) -> dict:
    slowest = min(stages, key=lambda s: stages[s].groups_per_s)
    async_rate = asynchronous.rate.groups_per_s
    mb = 2**-20
    return {
        "speedup_vs_sync": async_rate / sync.rate.groups_per_s,
        "pipeline_efficiency": async_rate / stages[slowest].groups_per_s,
        "slowest_stage": slowest,
        "efficiency_vs_core_limit": async_rate / core_limit(stages, layout),
        "core_limit_groups_per_s": core_limit(stages, layout),
        "sync": {
            "groups_per_s": sync.rate.groups_per_s,
            "staleness_mean": sync.staleness_mean,
            "busy_fraction": sync.busy,
        },
        "async": {
            "groups_per_s": async_rate,
            "max_staleness": config.learner.max_staleness,
            "staleness_mean": asynchronous.staleness_mean,
            "busy_fraction": asynchronous.busy,
        },
        "unpinned": _unpinned_report(unpinned, config.bench.eval_every_steps),
        "stages": {
            stage: {"groups_per_s": rate.groups_per_s, "groups": rate.groups, "seconds": rate.seconds}
            for stage, rate in stages.items()
        },
        "busy_fraction": asynchronous.busy,
        "peak_rss_mb": {role: memory.peak.get(role, 0) * mb for role in ROLES},
        "rss_growth_async": {role: _growth(memory.marks, role) for role in ROLES},
        "resources": {
            role: {
                "cores": list(layout.cores[role]),
                "processes": layout.processes[role],
                "torch_threads": layout.torch_threads[role],
            }
            for role in ROLES
        },
        "steps": {
            "warmup": config.bench.warmup_steps,
            "measured": config.bench.steps,
            "groups_per_step": config.learner.groups_per_step,
        },
        "machine": machine(),
    }


def _unpinned_report(runs: UnpinnedRuns, eval_every_steps: int) -> dict:
    def run(result: RunResult) -> dict:
        return {"groups_per_s": result.rate.groups_per_s, "staleness_mean": result.staleness_mean}

    report = {
        "sync": run(runs.sync),
        "async": run(runs.asynchronous),
        "speedup_vs_sync": runs.asynchronous.rate.groups_per_s / runs.sync.rate.groups_per_s,
    }
    if runs.with_eval is not None:
        report["async_eval"] = {
            **run(runs.with_eval),
            "eval_every_steps": eval_every_steps,
            "throughput_cost": 1 - runs.with_eval.rate.groups_per_s / runs.asynchronous.rate.groups_per_s,
        }
    return report


def _growth(marks: dict, role: str) -> float:
    """RSS growth of the role's largest process from the end of the async run's warm-up to its end."""
    warm, end = marks.get("async_warm", {}).get(role, 0), marks.get("async_end", {}).get(role, 0)
    return (end - warm) / warm if warm else math.nan


def bench_table(report: dict) -> str:
    sync, asynchronous, stages = report["sync"], report["async"], report["stages"]
    per_step = report["steps"]["groups_per_step"]
    lines = [
        "| measured | groups/s | s per step | note |",
        "|---|---|---|---|",
        f"| synchronous (eta 0) | {sync['groups_per_s']:.2f} | {per_step / sync['groups_per_s']:.2f} | staleness "
        f"{sync['staleness_mean']:.2f} |",
        f"| asynchronous (eta {asynchronous['max_staleness']}) | {asynchronous['groups_per_s']:.2f} | "
        f"{per_step / asynchronous['groups_per_s']:.2f} | staleness {asynchronous['staleness_mean']:.2f} |",
    ]
    for stage, rate in stages.items():
        lines.append(f"| {stage} alone | {rate['groups_per_s']:.2f} | {per_step / rate['groups_per_s']:.2f} | |")
    free = report["unpinned"]
    for name, run in (
        ("synchronous", free["sync"]),
        (f"asynchronous (eta {asynchronous['max_staleness']})", free["async"]),
    ):
        lines.append(
            f"| {name}, unpinned | {run['groups_per_s']:.2f} | {per_step / run['groups_per_s']:.2f} | "
            f"staleness {run['staleness_mean']:.2f}; every role on every core |"
        )
    with_eval = free.get("async_eval")
    if with_eval:
        lines.append(
            f"| asynchronous, unpinned, evaluating every {with_eval['eval_every_steps']} steps | "
            f"{with_eval['groups_per_s']:.2f} | "
            f"{per_step / with_eval['groups_per_s']:.2f} | staleness {with_eval['staleness_mean']:.2f} |"
        )
    lines += [
        "",
        f"unpinned (as a user's run): speedup_vs_sync **{free['speedup_vs_sync']:.2f}**.",
        *(
            [
                "",
                f"evaluation while training every {with_eval['eval_every_steps']} steps costs "
                f"**{100 * with_eval['throughput_cost']:.0f}%** "
                "of the unpinned asynchronous run's groups/s.",
            ]
            if with_eval
            else []
        ),
        "",
        f"pinned: speedup_vs_sync **{report['speedup_vs_sync']:.2f}**, pipeline_efficiency "
        f"**{report['pipeline_efficiency']:.2f}** "
        f"(slowest stage: {report['slowest_stage']}); against the limit of stages sharing cores "
        f"({report['core_limit_groups_per_s']:.2f} groups/s): {report['efficiency_vs_core_limit']:.2f}.",
        "",
        "| role | processes | cores | torch threads | busy (async) | busy (sync) | peak RSS (MB) | RSS growth "
        "(async) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for role, resources in report["resources"].items():
        lines.append(
            f"| {role} | {resources['processes']} | {','.join(map(str, resources['cores']))} | "
            f"{resources['torch_threads']} | "
            f"{asynchronous['busy_fraction'][role]:.2f} | {sync['busy_fraction'][role]:.2f} | "
            f"{report['peak_rss_mb'][role]:.0f} | {100 * report['rss_growth_async'][role]:+.1f}% |"
        )
    return "\n".join(lines)


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
