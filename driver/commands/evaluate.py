"""`python launch.py eval`: held-out accuracy, or a benchmark in the paper's three modes.

eval --run DIR                 a run's exported policy, with the run's own config
eval --checkpoint DIR          any policy checkpoint, against the configured one
eval data=PATH out=DIR         a benchmark (MathVista's layout and others), either of the
                               above (or the configured captioner) as the captioner
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from configs.commands import EvalCommandConfig
from configs.load import ConfigError, load_config, to_yaml
from driver.inputs import DataError, resolve_inputs
from driver.job_config import add_config_arguments, expand_short_keys
from driver.run import evaluate_run
from driver.session import ray_session

HELP = "held-out accuracy before/after, or a benchmark in three modes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", default=None, help="a run directory (its config and exported policy)")
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="a policy checkpoint directory (the captioner, or the reasoner with policy.role=reasoner)",
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run).resolve() if args.run else None
    overrides = expand_short_keys(args.overrides, "eval", ("data", "out"))
    saved = str(run_dir / "config.yaml") if run_dir and not args.config else None
    config = load_config(args.config or saved, overrides, EvalCommandConfig, saved_run=saved is not None)
    trained = run_dir / config.policy.role if run_dir else Path(args.checkpoint).resolve() if args.checkpoint else None
    if config.eval.data:
        return benchmark(config, trained)
    if bool(args.run) == bool(args.checkpoint):
        print(
            "eval: give exactly one of --run DIR or --checkpoint DIR (or data=PATH out=DIR for a benchmark)",
            file=sys.stderr,
        )
        return 2
    inputs = resolve_inputs(config)
    with ray_session(config):
        return evaluate_run(config, inputs, run_dir or trained, trained)


def benchmark(config: EvalCommandConfig, trained: Path | None) -> int:
    """`eval data=PATH out=DIR`: the captioner with each reasoner on a benchmark, in eval.modes;
    `trained` (a run's or a checkpoint) is the captioner, or with policy.role=reasoner a reasoner
    set beside the initial one."""
    from evaluation.benchmark import BenchmarkSpec, run_benchmark
    from evaluation.benchmark_report import benchmark_facts, format_overall, write_report
    from records.prepare import prepare_benchmark

    if not config.eval.out:
        raise ConfigError("eval data=PATH needs out=DIR (where eval.md, eval.csv and items.jsonl go)")
    inputs = resolve_inputs(config)
    reasoners = dict(config.eval.reasoners) or {"reasoner": inputs.reasoner}
    captioner = trained
    if config.policy.role == "reasoner" and trained is not None:
        reasoners, captioner = {"initial": inputs.reasoner, "trained": str(trained), **config.eval.reasoners}, None
    spec = BenchmarkSpec(
        captioner=str(captioner or config.eval.captioner or inputs.captioner),
        reasoners=reasoners,
        modes=tuple(dict.fromkeys(config.eval.modes)),
    )
    try:
        items, records_file = prepare_benchmark(
            Path(config.eval.data), Path(config.task.cache_dir), config.task.max_image_pixels
        )
    except (OSError, ValueError) as err:
        raise DataError(str(err)) from err
    items = items[: config.eval.max_prompts or None]
    out = Path(config.eval.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(to_yaml(config))
    with ray_session(config):
        results = run_benchmark(config, spec, items, records_file)
    rows = write_report(
        out, results, benchmark_facts(config, spec, len(items)), "python launch.py " + " ".join(sys.argv[1:])
    )
    print(format_overall(rows))
    print(f"results: {out / 'eval.md'}, {out / 'eval.csv'}, {out / 'items.jsonl'}")
    return 0
