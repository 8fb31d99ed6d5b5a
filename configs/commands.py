"""The settings only one command reads, kept out of a training run's config (and so out of the
config.yaml every run directory saves): `launch.py bench`'s `bench`, `launch.py soak`'s `soak`,
and `launch.py eval data=PATH`'s benchmark keys of `eval`.

Each such command reads its own config: the training config with its section added, from the
same `--config FILE` and `key=value` overrides (`bench.steps=3`, `soak.duration_s=60`,
`eval.modes=[caption]`). Given to another command, such a key is refused as unknown.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields, is_dataclass

from configs.bounds import Section, bounded, dotted, require
from configs.evaluation import BenchmarkEvalConfig, EvalConfig
from configs.schema import TrainConfig


def parse_cores(text: str) -> tuple[int, ...]:
    """'0,2' -> (0, 2); anything else than non-negative integers -> ()."""
    parts = [p.strip() for p in str(text).split(",")]
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else ()


@dataclass
class BenchConfig(Section):
    """`launch.py bench`: synchronous and asynchronous training and each stage alone, on one config.

    Each role's processes are pinned to its cores, so that roles on different cores model
    separate devices (as on a cluster) and a stage measured alone gets what it gets in the
    pipeline. Cores are given as "0" or "0,1"; every core must exist on this machine.
    """

    section = "bench"

    # Learner steps before measuring (the first steps pay for warm-up), then steps measured.
    warmup_steps: int = bounded(5, ge=1)
    steps: int = bounded(30, ge=2)
    learner_cores: str = "0"
    rollout_cores: str = "1"
    serve_cores: str = "1"
    # Train with a vanishing learning rate (every computation and weight push unchanged), so
    # that every phase does the same work per group: a policy that learns changes its captions
    # (the bundled task's grow from ~10 to ~24 tokens), and with them the cost of the later steps.
    hold_policy: bool = True
    # The unpinned asynchronous run once more with evaluation while training every this many steps,
    # to measure what it costs the run's throughput (0 = not measured). Shorter than a default
    # run's eval.every_steps so that the measured steps hold several evaluations.
    eval_every_steps: int = bounded(10, ge=0)
    # Also write the table into this checkout's BENCHMARKS.md.
    record: bool = False

    def check(self) -> None:
        for role in ("learner", "rollout", "serve"):
            require(
                bool(parse_cores(getattr(self, f"{role}_cores"))),
                f"bench.{role}_cores must name cores, e.g. '0' or '0,1'",
            )


@dataclass
class SoakConfig(Section):
    """`launch.py soak out=PATH`: train the configured run for a fixed time while faults are injected."""

    section = "soak"

    # The soak's run directory (soak.json, summary.json and the run's own files).
    out: str = ""
    duration_s: float = bounded(300.0, gt=0)
    # Seconds into the soak of the first fault; then each kind at its own interval (0 = never).
    first_fault_s: float = bounded(45.0, ge=0)
    actor_kill_every_s: float = bounded(100.0, ge=0)
    replica_kill_every_s: float = bounded(100.0, ge=0)
    garbage_every_s: float = bounded(30.0, ge=0)
    # Plausible groups with one defect each, one of every class the replay queue refuses
    # (learner/admission.py), sent to it at this interval.
    poison_every_s: float = bounded(30.0, ge=0)
    # Also write the soak's table into this checkout's BENCHMARKS.md ("Reliability").
    record: bool = False


@dataclass
class BenchCommandConfig(TrainConfig):
    """`launch.py bench`: the training config it measures, and `bench`."""

    bench: BenchConfig = field(default_factory=BenchConfig)


@dataclass
class SoakCommandConfig(TrainConfig):
    """`launch.py soak`: the training config it runs under faults, and `soak`."""

    soak: SoakConfig = field(default_factory=SoakConfig)


@dataclass
class EvalCommandConfig(TrainConfig):
    """`launch.py eval`: the training config, its `eval` with the benchmark keys added."""

    eval: BenchmarkEvalConfig = field(default_factory=BenchmarkEvalConfig)


# Each command that reads keys of its own, by its name on the command line.
COMMAND_CONFIGS: dict[str, type[TrainConfig]] = {
    "bench": BenchCommandConfig,
    "soak": SoakCommandConfig,
    "eval": EvalCommandConfig,
}


def training_config(config: TrainConfig) -> TrainConfig:
    """`config` without any command's own settings: what a run directory saves."""
    values = {f.name: getattr(config, f.name) for f in fields(TrainConfig)}
    values["eval"] = EvalConfig(**{f.name: getattr(config.eval, f.name) for f in fields(EvalConfig)})
    return TrainConfig(**values)


def command_keys() -> dict[str, str]:
    """Each key (a whole section, or one key of a section) only a command reads -> that command."""
    return {
        key: command for command, schema in COMMAND_CONFIGS.items() for key in _keys_beyond(schema(), TrainConfig(), "")
    }


def _keys_beyond(extended: object, base: object, path: str) -> Iterator[str]:
    """The dotted keys of `extended` (a dataclass) that `base` lacks."""
    known = {f.name for f in fields(base)}
    for f in fields(extended):
        key = dotted(path, f.name)
        if f.name not in known:
            yield key
            continue
        mine, theirs = getattr(extended, f.name), getattr(base, f.name)
        if is_dataclass(mine) and type(mine) is not type(theirs):
            yield from _keys_beyond(mine, theirs, key)
