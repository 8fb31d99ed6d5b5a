"""Start an asynchronous caption-reward RL run, or the reasoner pool alone.

    python launch.py [train] [--config FILE] [key=value ...]   # the main job (default)
    python launch.py resume=RUN_DIR [key=value ...]            # continue a run from its latest checkpoint
    python launch.py alternate [key=value ...]                 # train the roles in turn (policy.stages)
    python launch.py serve   [--config FILE] [key=value ...]   # the reasoner pool as a live service
    python launch.py infer   --image PATH --question TEXT      # two-stage inference of one image
    python launch.py eval    --run DIR | --checkpoint DIR      # held-out accuracy before/after
    python launch.py eval    data=PATH out=DIR                 # a benchmark in the paper's three modes
    python launch.py check-data FILE                           # a data file's unusable rows, with why
    python launch.py build   [key=value ...]                   # rebuild the bundled task
    python launch.py bench   out=PATH [key=value ...]          # async vs sync throughput (BENCHMARKS.md)
    python launch.py soak    out=PATH [key=value ...]          # train under injected faults (soak.json)
    python launch.py keys    out=DIR                           # ZeroMQ CURVE key pairs (curve.keys_dir=DIR)

A run: start Ray, the staleness gate, the learner, the reasoner pool and the rollout actors;
show progress until the learner has done its steps, restarting rollout actors that die; stop
everything, also on Ctrl-C; write the run's account of its groups (summary.json); then evaluate
the initial and trained captioner on held-out prompts and plot the reward.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from configs.load import ConfigError, load_config, to_yaml
from configs.schema import TrainConfig
from configs.seeds import derived_seed
from supervisor.placement import PlacementError

log = logging.getLogger("launch")
COMMANDS = ("train", "alternate", "serve", "infer", "eval", "check-data", "build", "bench", "soak", "keys")
# Seconds a stopping run gives its roles to stop gracefully (Ctrl-C, the end of training).
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Inputs:
    """The resolved files a run needs."""

    train_file: str
    eval_file: str
    captioner: str
    reasoner: str

    def policy(self, role: str) -> str:
        """The checkpoint of the model that learns (policy.role)."""
        return self.reasoner if role == "reasoner" else self.captioner

    def frozen(self, role: str) -> str:
        """The checkpoint of the other model, frozen and served by the pool."""
        return self.captioner if role == "reasoner" else self.reasoner


def resolve_inputs(config: TrainConfig, rebuild: bool = False) -> Inputs:
    """The user's files and checkpoints (task.kind=files: the config's checks made sure they are
    named); or the bundled task, built and cached on first use, where a checkpoint named in
    `models.*` replaces its tiny model of the same role."""
    task, models = config.task, config.models
    if task.kind == "files":
        # The filters select training rows; the held-out split is evaluated as given.
        eval_file = prepared_data(config, task.eval_file, filtered=False) if task.eval_file else ""
        return Inputs(prepared_data(config, task.train_file, filtered=True), eval_file, models.captioner, models.reasoner)
    from task.bundle import ensure_bundled_task

    if task.exclude_sources or task.categories:
        raise ConfigError("task.exclude_sources and task.categories filter your data files: they need task.kind=files")
    bundle = ensure_bundled_task(
        Path(task.cache_dir).expanduser(), task.seed, task.num_train, task.num_eval, task.warm_start, rebuild
    )
    return Inputs(
        train_file=str(bundle.train_file),
        eval_file=str(bundle.eval_file),
        captioner=models.captioner or str(bundle.captioner),
        reasoner=models.reasoner or str(bundle.partial_reasoner if task.bundled_reasoner == "partial" else bundle.reasoner),
    )


class DataError(ValueError):
    """A data file cannot be read, or holds no usable row; the message names the file."""


def prepared_data(config: TrainConfig, path: str, filtered: bool) -> str:
    """The records file the roles read, made from the user's data file `path` (records/prepare.py),
    with `filtered` the rows task.exclude_sources and task.categories select."""
    from records.prepare import RecordFilter, prepare_records

    task = config.task
    record_filter = RecordFilter.of(task.exclude_sources, task.categories) if filtered else RecordFilter()
    try:
        prepared = prepare_records(Path(path), Path(task.cache_dir), record_filter, task.max_image_pixels)
    except (OSError, ValueError) as err:
        raise DataError(str(err)) from err
    if prepared.kept == 0:
        raise DataError(f"{path}: no usable row ({prepared.filtered_out} left out by the filter, {len(prepared.problems)} unusable)")
    return str(prepared.records_file)


def check_reward_data(config: TrainConfig, inputs: Inputs) -> None:
    """Fail before anything starts if the reward needs what the training records lack."""
    if "mcq" in config.reward.mix():
        from records.vqa import read_records

        records = read_records(Path(inputs.train_file))
        missing = sum(not r.questions for r in records)
        if missing:
            raise DataError(
                f"reward.kind=mcq asks each image's multiple-choice questions, but {missing} of the {len(records)} "
                f"training records have none (the records' `questions`)"
            )


def worker_env() -> dict[str, str]:
    """Environment for every role's process."""
    env = {
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        # Keep the progress bar readable: no per-process weight-loading bars or info chatter.
        "TRANSFORMERS_VERBOSITY": "error",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    try:
        import torch

        if not torch.cuda.is_available():
            env["DS_ACCELERATOR"] = "cpu"
    except ImportError:
        pass
    return env


# The stop signal received: SIGINT (Ctrl-C) or SIGTERM (`kill`, a cluster scheduler ending the
# job), which stops a run the same way. Kept as a flag as well as raised: Ray re-raises a plain
# KeyboardInterrupt from its calls, and one arriving inside a Ray call has been seen to vanish
# there (the run went on training); the progress loop checks the flag every second.
_stop_signal: int | None = None


def _stop_requested(signum, frame) -> None:
    global _stop_signal
    _stop_signal = signum
    raise KeyboardInterrupt


def stop_exit_code() -> int:
    """A shell's exit code for the stop signal received (130 for Ctrl-C, 143 for a `kill`)."""
    return 128 + (_stop_signal or signal.SIGINT)


def start_ray(config: TrainConfig) -> None:
    import ray

    env = worker_env()
    os.environ.update(env)
    if config.ray.address:
        ray.init(address=config.ray.address, runtime_env={"env_vars": env})
    else:
        # "local": a new Ray of this run's own, never the cluster a past `ray start` left its
        # address behind for (ray.init's default joins that one).
        ray.init(address="local", num_cpus=config.ray.num_cpus, include_dashboard=False, runtime_env={"env_vars": env})
    # After ray.init, which installs a SIGTERM handler of its own that aborts the driver: a
    # `kill` of the driver then stops the run the way Ctrl-C does, leaving no role behind.
    signal.signal(signal.SIGTERM, _stop_requested)
    signal.signal(signal.SIGINT, _stop_requested)


@dataclass
class Roles:
    """Handles of a running job's Ray actors."""

    gate: object
    learners: list
    actors: list
    runs: list  # the actors' run() calls (replaced when an actor is restarted)
    replay_endpoint: str
    evaluator: object = None  # evaluation while training (eval.every_steps), if on


def start_roles(config: TrainConfig, inputs: Inputs, run_dir: Path) -> Roles:
    """Gate, learner ranks, reasoner pool and rollout actors, wired together; actors start generating
    (a resumed run's from where its checkpoint left them)."""
    import ray

    from actors.rollout import ActorStart
    from actors.start import start_rollout_actors
    from learner.admission import run_bounds
    from learner.start import start_gate, start_learner
    from records.vqa import read_records
    from serve.pool import ReasonerPool
    from supervisor.placement import check_placement, record_placement, role_demands, serve_replicas, wait_started
    from wire.progress import ShardProgress

    role = config.policy.role
    policy = inputs.policy(role)
    # One spec for the actors that sample and the learner that recomputes their logprobs.
    sampling = policy_sampling_spec(config, role, policy)
    pinned = check_placement(config)
    demands = {d.role: d for d in role_demands(config)}
    timeout_s = config.ray.start_timeout_s
    gate = start_gate(config.learner)
    evaluation = start_evaluation(config, inputs, sampling)
    learner = start_learner(
        config.learner, policy, str(run_dir), sampling,
        config.rollout.num_actors, gate, worker_env(), config.seed, resume=bool(config.resume),
        curve_keys_dir=config.curve.keys_dir, nodes=pinned.get("learner rank", ()), role=role,
        bounds=run_bounds(config, (record.id for record in read_records(Path(inputs.train_file)))),
        evaluation=evaluation,
    )
    wait_started(demands["learner rank"], learner.ranks, timeout_s)
    # While the learner sets up. With serve.live the pool also serves people, two-stage model included.
    start_live_pool(config, inputs, http=config.serve.live, captioner=config.serve.live)
    learners, replay_endpoint, weight_source, resumed = learner.ready()
    actors = start_rollout_actors(
        config.rollout, policy, sampling, inputs.train_file, (replay_endpoint,), weight_source,
        config.serve.app_name, gate, worker_env(), config.seed, config.curve.keys_dir,
        nodes=pinned.get("rollout actor", ()), role=role,
    )
    wait_started(demands["rollout actor"], actors, timeout_s)
    replicas = serve_replicas(config.serve.app_name, ReasonerPool.name)
    record_placement(run_dir / "placement.json", learners, replicas, actors)
    starts = [None] * len(actors)
    if resumed is not None:
        ray.get(gate.restore.remote(resumed.gate, {a: len(p) for a, p in resumed.taken.items()}))
        starts = [
            ActorStart(resumed.taken.get(i, ShardProgress()), resumed.policy_version, resumed.actor_counters.get(i))
            for i in range(len(actors))
        ]
        log.info("resuming at step %d (policy version %d)", resumed.steps_done, resumed.policy_version)
    runs = [a.run.remote(s) for a, s in zip(actors, starts)]
    evaluator = evaluation.evaluator if evaluation is not None else None
    return Roles(gate=gate, learners=learners, actors=actors, runs=runs, replay_endpoint=replay_endpoint, evaluator=evaluator)


def start_evaluation(config: TrainConfig, inputs: Inputs, sampling):
    """The evaluator of eval.every_steps (its engines build while the learner starts), or None."""
    from evaluation.during_training import start_training_evaluator
    from wire.eval_points import EvalSchedule

    if not config.eval.every_steps:
        return None
    if config.policy.role != "captioner":
        log.info("eval.every_steps: evaluation while training covers a captioner policy; this run trains the %s", config.policy.role)
        return None
    if not inputs.eval_file:
        log.info("eval.every_steps: no held-out split (task.eval_file) to evaluate on while training")
        return None
    evaluator = start_training_evaluator(config, inputs.captioner, inputs.reasoner, inputs.eval_file, sampling)
    return EvalSchedule(evaluator, config.eval.every_steps)


def policy_sampling_spec(config: TrainConfig, role: str, policy: str):
    """How the policy samples (rollout.sampling, the policy's special tokens suppressed)."""
    from learner.policy_model import load_policy_processor
    from vlm.sampling import caption_sampling_spec

    _, tokenizer = load_policy_processor(role, policy)
    return caption_sampling_spec(config.rollout.sampling, tokenizer)


def stop_roles(roles: Roles | None, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop the actors (they finish scoring what they generated), close their engines and the
    learner, stop the reasoner pool, and free their resources (GPUs included) for what comes next.
    Prompt under load: the graceful part has `timeout_s` in all, then whatever is left is killed."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        return
    started = time.monotonic()
    if roles is not None:
        def left() -> float:
            return max(1.0, timeout_s - (time.monotonic() - started))

        try:
            ray.get([a.stop.remote() for a in roles.actors], timeout=left())
            ray.get(roles.runs, timeout=left())
            ray.get([a.close.remote() for a in roles.actors], timeout=left())  # vLLM engine processes
            ray.get([rank.close.remote() for rank in roles.learners], timeout=left())
            if roles.evaluator is not None:
                ray.get(roles.evaluator.close.remote(), timeout=left())
        except Exception as err:  # a role that died or did not stop in time: killed below
            log.warning("stopping roles: %s: %s", type(err).__name__, err)
        for handle in [*roles.actors, *roles.learners, roles.gate, *([roles.evaluator] if roles.evaluator else [])]:
            ray.kill(handle)
    serve.shutdown()
    log.info("roles stopped in %.1f s", time.monotonic() - started)


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def resumed_config(config: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    """`resume=RUN_DIR`: the run's own config.yaml, with this command line's other keys over it."""
    if args.config:
        raise ConfigError("resume=RUN_DIR takes the run's own config.yaml: give key=value overrides, not --config")
    run_dir = Path(config.resume).resolve()
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"resume={config.resume}: no config.yaml there, so it is not a run directory")
    if not (run_dir / "checkpoints" / "latest").is_file():
        raise ConfigError(
            f"resume={config.resume}: no complete checkpoint under {run_dir / 'checkpoints'} "
            "(set learner.checkpoint_every to save them during a run)"
        )
    return load_config(saved, [*args.overrides, f"run_dir={run_dir}", f"resume={run_dir}"])


def make_run_dir(config: TrainConfig) -> Path:
    run_dir = Path(config.run_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(to_yaml(config))
    return run_dir


def train(config: TrainConfig, watch=None) -> int:
    """A run, or with `watch` (supervisor.soak.SoakWatch) a soak."""
    run_dir = make_run_dir(config)
    inputs = resolve_inputs(config)
    check_reward_data(config, inputs)
    log.info("run directory: %s", run_dir)
    start_ray(config)
    try:
        run_roles(config, inputs, run_dir, watch)
        if config.eval.at_end:
            evaluate_run(config, inputs, run_dir, run_dir / config.policy.role)
    except KeyboardInterrupt:
        log.warning("%s; stopping every role", "terminated" if _stop_signal == signal.SIGTERM else "interrupted")
        return stop_exit_code()
    except PlacementError as err:
        print(f"placement error: {err}", file=sys.stderr)
        return 2
    finally:
        stop_ray()
    return 0


def alternate(config: TrainConfig) -> int:
    """`alternate`: one run per stage of policy.stages, in turn, each training its role with the
    other model frozen, both models taken from the latest stage that trained them (the
    configured ones before). The stages' runs are run_dir/stage<i>-<role>; stages.json lists them."""
    import dataclasses
    import json

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
            config, run_dir=str(stage_dir),
            policy=dataclasses.replace(config.policy, role=role),
            models=dataclasses.replace(config.models, **latest),
        )
        log.info("stage %d of %d: training the %s from %s (the %s frozen: %s)", index + 1, len(config.policy.stages), role,
                 latest[role], "reasoner" if role == "captioner" else "captioner", latest["reasoner" if role == "captioner" else "captioner"])
        code = train(stage)
        stages.append({"stage": index, "role": role, "run_dir": str(stage_dir), "started_from": dict(latest), "exit_code": code})
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

    roles = None
    try:
        roles = start_roles(config, inputs, run_dir)
        training = [rank.train.remote() for rank in roles.learners]
        faults = FaultLog()
        tick = watch.start(roles, faults) if watch is not None else None
        follow_progress(config, roles, training, faults, tick)
        log.info("done: metrics in %s", run_dir / "metrics.jsonl")
        summary = report_summary(roles, faults, run_dir / "summary.json")
        if watch is not None:
            watch.finish(summary, run_dir)
    finally:
        stop_roles(roles)
        plot_reward(run_dir)


def report_summary(roles: Roles, faults, path: Path) -> dict:
    """The run's account of its groups, logged and written to `path`."""
    import ray

    from supervisor.summary import run_summary, summary_lines, write_summary

    summary = run_summary(ray.get(roles.learners[0].accounting.remote()), ray.get(roles.gate.stats.remote()), faults)
    write_summary(summary, path)
    for line in summary_lines(summary):
        log.info("%s", line)
    log.info("summary: %s", path)
    return summary


def plot_reward(run_dir: Path) -> None:
    """The reward plot of whatever the run got through, held-out accuracy marked if evaluated."""
    from evaluation.plot import plot_run
    from evaluation.report import load_results

    plot = plot_run(run_dir, load_results(run_dir))
    if plot:
        log.info("reward plot: %s", plot)


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


def eval_command(args: argparse.Namespace) -> int:
    """`eval --run DIR` evaluates a run's exported captioner with the run's own config;
    `eval --checkpoint DIR` evaluates any captioner checkpoint against the configured one; with
    `data=PATH out=DIR`, either (or the configured captioner) is evaluated on a benchmark."""
    run_dir = Path(args.run).resolve() if args.run else None
    config = load_config(args.config or (str(run_dir / "config.yaml") if run_dir else None), args.overrides)
    trained = run_dir / config.policy.role if run_dir else Path(args.checkpoint).resolve() if args.checkpoint else None
    if config.eval.data:
        return benchmark_command(config, trained)
    if bool(args.run) == bool(args.checkpoint):
        print("eval: give exactly one of --run DIR or --checkpoint DIR (or data=PATH out=DIR for a benchmark)", file=sys.stderr)
        return 2
    inputs = resolve_inputs(config)
    start_ray(config)
    try:
        return evaluate_run(config, inputs, run_dir or trained, trained)
    except KeyboardInterrupt:
        return stop_exit_code()
    finally:
        stop_ray()


def benchmark_command(config: TrainConfig, trained: Path | None) -> int:
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
        items, records_file = prepare_benchmark(Path(config.eval.data), Path(config.task.cache_dir), config.task.max_image_pixels)
    except (OSError, ValueError) as err:
        raise DataError(str(err)) from err
    items = items[: config.eval.max_prompts or None]
    out = Path(config.eval.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(to_yaml(config))
    start_ray(config)
    try:
        results = run_benchmark(config, spec, items, records_file)
    except KeyboardInterrupt:
        return stop_exit_code()
    finally:
        stop_ray()
    rows = write_report(out, results, benchmark_facts(config, spec, len(items)), "python launch.py " + " ".join(sys.argv[1:]))
    print(format_overall(rows))
    print(f"results: {out / 'eval.md'}, {out / 'eval.csv'}, {out / 'items.jsonl'}")
    return 0


def check_data_command(args: argparse.Namespace) -> int:
    """`check-data FILE [key=value ...]`: the file's unusable rows with reasons; exit 1 if any."""
    from records.data_check import check_data_file, format_check
    from records.prepare import RecordFilter

    files = [o for o in args.overrides if "=" not in o]
    if len(files) != 1:
        print("check-data: give one data file (.jsonl, .parquet, or a benchmark's .json / .tsv)", file=sys.stderr)
        return 2
    config = load_config(args.config, [o for o in args.overrides if "=" in o])
    task = config.task
    try:
        check = check_data_file(Path(files[0]), RecordFilter.of(task.exclude_sources, task.categories), task.max_image_pixels)
    except (OSError, ValueError) as err:
        raise DataError(str(err)) from err
    print(format_check(check))
    return 1 if check.problems else 0


def follow_progress(config: TrainConfig, roles: Roles, training: list, faults, tick=None) -> None:
    """A progress bar with live metrics until the learner finishes. A rollout actor that dies is
    restarted where it left off; a role that fails otherwise fails the run. `tick(metrics)`, if
    given, is called about every second (the soak injects its faults there)."""
    import ray
    from tqdm import tqdm

    from supervisor.restarts import restart_actor

    total_steps = config.learner.total_steps
    with tqdm(total=None if tick else total_steps, desc="learner steps", unit="step", dynamic_ncols=True) as bar:
        while True:
            if _stop_signal is not None:
                raise KeyboardInterrupt
            done, _ = ray.wait(training + roles.runs, num_returns=1, timeout=1.0)
            if done and set(done) & set(training):
                ray.get(training)  # raises the learner's error if it failed
                if bar.total:
                    bar.update(bar.total - bar.n)
                return
            if done:
                index = roles.runs.index(done[0])
                try:
                    ray.get(done[0])
                except ray.exceptions.RayActorError as died:
                    restart_actor(config, roles, index, died, faults)
                    continue
                raise RuntimeError(f"rollout actor {index} stopped before the learner finished")
            metrics = ray.get(roles.learners[0].latest_metrics.remote())
            show_metrics(bar, metrics)
            if tick is not None:
                tick(metrics)


def show_metrics(bar, metrics: dict) -> None:
    from wire.eval_points import EVAL_ACCURACY

    if "step" in metrics:
        bar.update(metrics["step"] + 1 - bar.n)
        heldout = {"heldout": f"{metrics[EVAL_ACCURACY]:.3f}"} if EVAL_ACCURACY in metrics else {}
        bar.set_postfix(
            reward=f"{metrics['reward/mean']:.3f}",
            version=metrics["policy_version"],
            stale=f"{metrics['staleness/mean']:.2f}",
            caps_s=f"{metrics['throughput/captions_per_s']:.1f}",
            **heldout,
        )


def start_live_pool(config: TrainConfig, inputs: Inputs, http: bool, captioner: bool):
    """The reasoner pool; with `captioner`, the captioner service behind its two-stage model
    (serve.api.captioner, else the run's captioner). A run training the reasoner always has the
    service: the frozen captioner writes the policy's prompts (the run's captioner, always)."""
    from actors.caption_service import caption_service_app
    from serve.pool import start_reasoner_pool

    service = None
    if config.policy.role == "reasoner":
        service = caption_service_app(config.rollout, inputs.captioner, derived_seed(config.seed, "caption-service"))
    elif captioner and config.serve.api.two_stage_model:
        checkpoint = config.serve.api.captioner or inputs.captioner
        service = caption_service_app(config.rollout, checkpoint, derived_seed(config.seed, "caption-service"))
    return start_reasoner_pool(config.serve, inputs.reasoner, config.seed, http=http, captioner=service, reward=config.reward)


def serve_forever(config: TrainConfig) -> int:
    from ray import serve

    from supervisor.placement import check_placement

    inputs = resolve_inputs(config)
    start_ray(config)
    try:
        check_placement(config, training=False)
        start_live_pool(config, inputs, http=True, captioner=True)
        base = f"http://{config.serve.http_host}:{config.serve.http_port}"
        log.info("serving at %s: OpenAI API at %s/v1, demo page at %s/ (Ctrl-C stops it)", base, base, base)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    except PlacementError as err:
        print(f"placement error: {err}", file=sys.stderr)
        return 2
    finally:
        serve.shutdown()
        stop_ray()


def infer_command(args: argparse.Namespace, config: TrainConfig) -> int:
    """`infer --image PATH --question TEXT`: caption, tentative answer and final answer, printed."""
    if not (args.image and args.question):
        print("infer: give --image PATH and --question TEXT", file=sys.stderr)
        return 2
    from serve.api_images import check_image
    from serve.api_protocol import ApiError

    image = Path(args.image)
    if not image.is_file():
        print(f"infer: no image file at {image}", file=sys.stderr)
        return 2
    data = image.read_bytes()
    try:  # here, before anything starts: the service's own check, whose error Ray would wrap
        check_image(data, config.serve.api.max_image_pixels)
    except ApiError as err:
        print(f"infer: {image}: {err.message}", file=sys.stderr)
        return 2
    inputs = resolve_inputs(config)
    start_ray(config)
    try:
        pool = start_live_pool(config, inputs, http=False, captioner=True)
        result = pool.infer.remote(args.question, data, config.seed).result()
        print(f"caption:          {result['caption']}")
        print(f"tentative answer: {result['tentative_answer']}")
        print(f"final answer:     {result['answer']}")
        return 0
    except KeyboardInterrupt:
        return stop_exit_code()
    finally:
        from ray import serve

        serve.shutdown()
        stop_ray()


def soak_command(config: TrainConfig) -> int:
    """`soak out=PATH`: train for soak.duration_s under injected faults; PATH/soak.json."""
    import dataclasses

    from records.vqa import read_records
    from supervisor.poison import PoisonSpec
    from supervisor.soak import SoakWatch

    if not config.soak.out:
        print("config error: soak needs out=PATH (where soak.json and the run go)", file=sys.stderr)
        return 2
    config = dataclasses.replace(
        config, run_dir=config.soak.out, resume="",
        learner=dataclasses.replace(config.learner, total_steps=10**9),  # the clock ends it
        eval=dataclasses.replace(config.eval, at_end=False),
    )
    first_prompt = read_records(Path(resolve_inputs(config).train_file))[0].id
    poison = PoisonSpec(config.rollout.group_size, config.rollout.sampling.max_new_tokens, first_prompt)
    code = train(config, SoakWatch(config.soak, config.serve.app_name, poison))
    if code == 0 and config.soak.record:  # a process of its own: the benchmarks import this module
        code = subprocess.call([sys.executable, "-m", "benchmarks.reliability", config.soak.out], cwd=Path(__file__).resolve().parent)
    return code


def keys_command(args: argparse.Namespace) -> int:
    """`keys out=DIR [actors=N]`: the learner's and the actors' CURVE key pairs (and one pair per
    actor with `actors`), for curve.keys_dir=DIR."""
    from wire.curve import generate_keys

    given = dict(o.split("=", 1) for o in args.overrides if "=" in o)
    if "out" not in given or set(given) - {"out", "actors"} or len(given) != len(args.overrides) or not given.get("actors", "0").isdigit():
        print("keys: give out=DIR, and optionally actors=N (one key pair per actor)", file=sys.stderr)
        return 2
    try:
        generate_keys(Path(given["out"]), int(given.get("actors", "0")))
    except FileExistsError as err:
        print(f"keys: {err}", file=sys.stderr)
        return 2
    print(f"CURVE keys in {given['out']}: set curve.keys_dir={given['out']} and make the folder readable on every node")
    return 0


def check_curve_keys(config: TrainConfig) -> None:
    """Fail before anything starts if curve.keys_dir is set but holds no usable keys."""
    if config.curve.keys_dir:
        from wire.curve import load_keys

        try:
            for actor_id in range(config.rollout.num_actors):  # the learner's pair, and each actor's
                load_keys(config.curve.keys_dir, actor_id)
        except (OSError, ValueError) as err:
            raise ConfigError(str(err)) from None


def check_exposure(config: TrainConfig, serves_http: bool) -> None:
    """Refuse a socket beyond loopback that is neither protected nor allowed; warn once for an
    allowed one (configs/exposure.py)."""
    from configs.exposure import exposure

    found = exposure(config, os.environ, serves_http)
    if found.refused:
        raise ConfigError("; ".join(found.refused))
    for warning in found.warnings:
        log.warning("%s", warning)


def bench_command(args: argparse.Namespace) -> int:
    """`bench out=PATH [key=value ...]`: the throughput benchmark on the configured run. It runs
    as its own process: the benchmark composes this module's roles, so this module does not
    import it (the packages import one another without a cycle)."""
    config = ["--config", args.config] if args.config else []
    here = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
    child = subprocess.Popen([sys.executable, "-m", "benchmarks.pipeline", *config, *args.overrides], env=env)
    try:
        return child.wait()
    except KeyboardInterrupt:  # the benchmark got the same Ctrl-C and is stopping its roles
        return child.wait()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("--config", default=None, help="YAML file merged over the schema's defaults (configs/schema.py)")
    parser.add_argument("--run", default=None, help="eval: a run directory (its config and exported policy)")
    parser.add_argument("--checkpoint", default=None, help="eval: a policy checkpoint directory (the captioner, or the reasoner with policy.role=reasoner)")
    parser.add_argument("--image", default=None, help="infer: an image file")
    parser.add_argument("--question", default=None, help="infer: the question about it")
    parser.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. rollout.num_actors=3")
    # The command is optional: `python launch.py key=value` trains.
    # Intermixed: options may sit between the command and the overrides.
    args = parser.parse_intermixed_args(argv if argv and argv[0] in COMMANDS else ["train", *argv])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        return run_command(args)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    except DataError as err:
        print(f"data error: {err}", file=sys.stderr)
        return 2


# Commands whose `key=PATH` is short for `section.key=PATH`.
_SHORT_KEYS = {"soak": ("soak", ("out",)), "eval": ("eval", ("data", "out"))}


def run_command(args: argparse.Namespace) -> int:
    if args.command == "bench":
        return bench_command(args)
    if args.command == "keys":
        return keys_command(args)
    if args.command == "check-data":
        return check_data_command(args)
    if args.command in _SHORT_KEYS:
        section, keys = _SHORT_KEYS[args.command]
        args.overrides = [f"{section}.{o}" if o.split("=")[0] in keys else o for o in args.overrides]
    if args.command == "eval":
        return eval_command(args)
    config = load_config(args.config, args.overrides)
    if config.resume:
        config = resumed_config(config, args)
    check_curve_keys(config)
    check_exposure(config, serves_http=args.command == "serve" or config.serve.live)
    if args.command == "build":
        if config.task.kind != "bundled":
            print("config error: `build` builds the bundled task; this config has task.kind=files", file=sys.stderr)
            return 2
        log.info("bundled task rebuilt: %s", resolve_inputs(config, rebuild=True))
        return 0
    if args.command == "infer":
        return infer_command(args, config)
    if args.command == "soak":
        return soak_command(config)
    if args.command == "alternate":
        return alternate(config)
    return serve_forever(config) if args.command == "serve" else train(config)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
