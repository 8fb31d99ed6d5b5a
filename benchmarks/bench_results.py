"""What `launch.py bench` measures, apart from how it runs it (benchmarks/pipeline.py): where each
role runs (`Layout`: its cores, processes and threads, and their pinning), the runs' results, and
the report and table made of them."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

from benchmarks.processes import pin, role_processes, titled_processes
from benchmarks.report import machine
from benchmarks.stages import StageRate
from configs.commands import BenchCommandConfig, parse_cores

ROLES = ("learner", "rollout", "serve")
STAGE_ROLE = {"generation": "rollout", "scoring": "serve", "learner": "learner"}
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


@dataclass(frozen=True)
class RunResult:
    rate: StageRate
    busy: dict[str, float]
    staleness_mean: float


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
