"""`python -m benchmarks.live_load out=PATH [--record] [key=value ...]`: live traffic and training
sharing the reasoner pool.

A bounded load test on loopback: `--concurrency` clients send chat completions to the pool's
reasoner model, each the next as soon as its last is answered, until `--requests` are answered or
`--duration` seconds have passed. In one Ray session, one after the other:

1. live alone: the service without training (`launch.py serve`'s pool);
2. training alone: a run with the API on (serve.live=true) and no requests;
3. training + live: the same run under the load;
4. training + live with serve.api.live_burst=1: live and training take turns on the engine
   (the default lets 4 live jobs run for each waiting training job).

The load starts once training has done its warm-up steps (bench.warmup_steps), and training's
groups/s are counted over the load's window (in 2, a window of the same length, no requests).
Training holds its policy (a vanishing learning rate, as `launch.py bench` does), so every phase
does the same work per group: a learning captioner's captions grow, and with them each step.
Writes PATH/live_load.json and PATH/live_load.md (the table, also printed); with --record, the
table's section of BENCHMARKS.md too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.pipeline import HELD_LR, split_out, with_changes
from benchmarks.report import machine, write_section
from configs.commands import BenchCommandConfig
from learner.metrics import read_metrics

log = logging.getLogger("live_load")
COMMAND = "python -m benchmarks.live_load out=runs/live_load --record"
# Training steps of each run: warm-up, then enough for the load's window at ~2-3 s a step.
TRAIN_STEPS = 45


@dataclass(frozen=True)
class Load:
    requests: int
    concurrency: int
    duration_s: float


@dataclass
class Window:
    """What happened between the load's start and end."""

    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0  # learner steps done inside the window (training phases)

    def summary(self, groups_per_step: int) -> dict:
        lat = np.asarray(self.latencies_s) if self.latencies_s else np.asarray([np.nan])
        return {
            "requests": len(self.latencies_s),
            "errors": len(self.errors),
            "seconds": round(self.seconds, 2),
            "requests_per_s": round(len(self.latencies_s) / self.seconds, 3) if self.seconds else None,
            "p50_s": round(float(np.percentile(lat, 50)), 3),
            "p99_s": round(float(np.percentile(lat, 99)), 3),
            "groups_per_s": round(self.steps * groups_per_step / self.seconds, 3) if self.steps else None,
            "first_errors": self.errors[:3],
        }


def prompts(eval_file: str, count: int = 32) -> list[list[dict]]:
    """Reasoner conversations like scoring's: held-out questions with a short description."""
    from records.vqa import read_records
    from vlm.reasoner_prompt import reasoner_messages

    records = read_records(Path(eval_file))[:count]
    return [reasoner_messages("top left: a red circle. bottom right: a blue square.", r.question) for r in records]


def run_load(
    base_url: str,
    conversations: list[list[dict]],
    load: Load,
    max_tokens: int,
    model: str,
    stop: threading.Event | None = None,
) -> Window:
    """Closed-loop load: `load.concurrency` clients until `load.requests` answers, the duration, or `stop`."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)
    window, lock, sent = Window(), threading.Lock(), iter(range(load.requests))
    start = time.monotonic()

    def client_loop() -> None:
        while time.monotonic() - start < load.duration_s and not (stop and stop.is_set()):
            with lock:
                i = next(sent, None)
            if i is None:
                return
            began = time.monotonic()
            try:
                client.chat.completions.create(
                    model=model, messages=conversations[i % len(conversations)], max_tokens=max_tokens, seed=i
                )
                with lock:
                    window.latencies_s.append(time.monotonic() - began)
            except openai.APIError as err:
                with lock:
                    window.errors.append(f"{type(err).__name__}: {err}")

    with ThreadPoolExecutor(load.concurrency) as pool:
        for _ in range(load.concurrency):
            pool.submit(client_loop)
    window.seconds = time.monotonic() - start
    return window


def wait_for_service(base_url: str, timeout_s: float = 600) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(base_url.removesuffix("/v1") + "/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise TimeoutError(f"the service at {base_url} did not come up in {timeout_s} s")


def _steps_done(run_dir: Path) -> int:
    metrics = run_dir / "metrics.jsonl"
    return len(read_metrics(metrics)) if metrics.exists() else 0  # steps' rows: no evaluation's, no half-written one


def live_alone(config: BenchCommandConfig, inputs, load: Load) -> Window:
    from ray import serve

    from driver.roles import start_live_pool

    start_live_pool(config, inputs, http=True, captioner=False)
    try:
        base = f"http://{config.serve.http_host}:{config.serve.http_port}/v1"
        wait_for_service(base)
        return run_load(
            base, prompts(inputs.eval_file), load, config.serve.max_new_tokens, config.serve.api.reasoner_model
        )
    finally:
        serve.shutdown()


def training_with(config: BenchCommandConfig, inputs, run_dir: Path, load: Load, send: bool) -> Window:
    """A training run with the API on; over a window after warm-up, the load (or none)."""
    from driver.run import make_run_dir, run_roles

    config = dataclasses.replace(config, run_dir=str(run_dir))
    make_run_dir(config)
    result: list[Window] = []
    done = threading.Event()
    watcher = threading.Thread(
        target=lambda: result.append(_window(config, inputs, run_dir, load, send, done)), daemon=True
    )
    watcher.start()
    try:
        run_roles(config, inputs, run_dir)
    finally:
        done.set()
        watcher.join()
    if not result:
        raise RuntimeError("the load window never opened: training ended before its warm-up steps")
    return result[0]


def _window(config: BenchCommandConfig, inputs, run_dir: Path, load: Load, send: bool, done: threading.Event) -> Window:
    while _steps_done(run_dir) < config.bench.warmup_steps:
        if done.wait(0.2):
            return Window()
    steps0, began = _steps_done(run_dir), time.monotonic()
    if send:
        base = f"http://{config.serve.http_host}:{config.serve.http_port}/v1"
        window = run_load(
            base,
            prompts(inputs.eval_file),
            load,
            config.serve.max_new_tokens,
            config.serve.api.reasoner_model,
            stop=done,
        )
    else:
        window = Window()
        done.wait(load.duration_s)
        window.seconds = time.monotonic() - began
    window.steps = _steps_done(run_dir) - steps0
    if done.is_set():
        log.warning("training ended inside the load's window: raise learner.total_steps for a full window")
    return window


def report(config: BenchCommandConfig, load: Load, phases: dict[str, Window]) -> tuple[dict, str]:
    groups = config.learner.groups_per_step
    rows = {name: window.summary(groups) for name, window in phases.items()}
    with_load, alone = rows["training + live"]["groups_per_s"], rows["training alone"]["groups_per_s"]
    result = {
        "load": dataclasses.asdict(load),
        "max_tokens": config.serve.max_new_tokens,
        "phases": rows,
        "training_kept": round(with_load / alone, 3) if with_load and alone else None,
        "machine": machine(),
    }
    lines = [
        "| phase | live requests (errors) | live req/s | live p50 s | live p99 s | training groups/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        live = (
            ("-",) * 4
            if name == "training alone"
            else (f"{row['requests']} ({row['errors']})", row["requests_per_s"], row["p50_s"], row["p99_s"])
        )
        lines.append("| " + " | ".join(map(str, (name, *live, row["groups_per_s"] or "-"))) + " |")
    table = "\n".join(lines) + (
        f"\n\nLoad: {load.concurrency} closed-loop clients, at most {load.requests} requests or {load.duration_s:.0f} "
        "s; "
        f"chat completions of the reasoner model, max_tokens {config.serve.max_new_tokens}. "
        f"Training keeps {result['training_kept']} of its groups/s under the load."
    )
    return result, table


def run(config: BenchCommandConfig, load: Load, out: Path, record: bool) -> dict:
    from driver.inputs import resolve_inputs
    from driver.session import ray_session

    out.mkdir(parents=True, exist_ok=True)
    inputs = resolve_inputs(config)
    live = with_changes(config, serve={"live": True}, learner={"lr": HELD_LR})
    turns = with_changes(live, serve={"api": dataclasses.replace(live.serve.api, live_burst=1)})
    with ray_session(config):
        phases = {"live alone": live_alone(live, inputs, load)}
        log.info("live alone: %s", phases["live alone"].summary(1))
        phases["training alone"] = training_with(live, inputs, out / "training_alone", load, send=False)
        phases["training + live"] = training_with(live, inputs, out / "training_live", load, send=True)
        phases["training + live, live_burst=1"] = training_with(
            turns, inputs, out / "training_live_turns", load, send=True
        )
    result, table = report(config, load, phases)
    (out / "live_load.json").write_text(json.dumps(result, indent=2))
    (out / "live_load.md").write_text(table + "\n")
    print(table)
    if record:
        write_section("Live service under training", COMMAND, result["machine"], table)
    return result


def main(argv: list[str]) -> int:
    from configs.load import load_config
    from driver.session import exit_code

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--requests", type=int, default=400, help="at most this many requests per phase")
    parser.add_argument("--concurrency", type=int, default=4, help="closed-loop clients")
    parser.add_argument("--duration", type=float, default=40.0, help="at most this many seconds of load per phase")
    parser.add_argument("--record", action="store_true", help="also write the table into BENCHMARKS.md")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for name in ("httpx", "httpx2"):  # no line per request (the openai client logs through one of them)
        logging.getLogger(name).setLevel(logging.WARNING)
    out, overrides = split_out(args.overrides, "live_load")
    if out is None:
        return 2
    if min(args.requests, args.concurrency) < 1 or args.duration <= 0:
        print("live_load: --requests and --concurrency must be >= 1, --duration > 0", file=sys.stderr)
        return 2

    def measure() -> int:
        config = load_config(args.config, [f"learner.total_steps={TRAIN_STEPS}", *overrides], BenchCommandConfig)
        run(config, Load(args.requests, args.concurrency, args.duration), out, args.record)
        return 0

    return exit_code(measure)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
