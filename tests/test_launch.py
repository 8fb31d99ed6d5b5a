"""launch.py as a user runs it: config errors, a whole short run, Ctrl-C; no process left behind."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from learner.rollout_log import read_rollouts
from tests.tiny_task import TINY_TASK_OVERRIDES

REPO = Path(__file__).resolve().parents[1]


def launch(args: list[str], **kwargs) -> subprocess.Popen:
    # A session of its own: every process the run starts (Ray's too) can be found by its sid.
    return subprocess.Popen(
        [sys.executable, "launch.py", *args], cwd=REPO, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs,
    )


def leftovers(sid: int) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            if os.getsid(proc.pid) == sid:
                found.append(f"{proc.pid} {proc.info['name']}")
        except (ProcessLookupError, PermissionError):
            continue
    return found


def wait_gone(sid: int, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := leftovers(sid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def short_run(tmp_path: Path, steps: int, run: str = "run") -> list[str]:
    return [
        f"run_dir={tmp_path / run}", f"task.cache_dir={tmp_path / 'cache'}", *TINY_TASK_OVERRIDES,
        f"learner.total_steps={steps}", "learner.groups_per_step=2", "rollout.group_size=4",
        # No HTTP endpoint: nothing to bind, so no port another process could take first.
        "rollout.sampling.max_new_tokens=8", "serve.http_port=0",
    ]


def test_eval_needs_a_run_or_a_checkpoint():
    proc = launch(["eval"])
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "--run DIR or --checkpoint DIR" in out


def test_a_misspelled_key_fails_at_once_naming_it():
    proc = launch(["rollout.num_actor=3"])
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "unknown config key 'rollout.num_actor'" in out


def test_the_live_service_needs_an_http_port():
    proc = launch(["serve", "serve.http_port=0"])
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "serve.http_port > 0" in out


@pytest.mark.integration
def test_a_run_exits_zero_and_leaves_no_process(tmp_path):
    proc = launch(short_run(tmp_path, steps=3))
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 2]
    assert "learner steps" in out  # the progress bar
    assert wait_gone(proc.pid) == []
    # The end of a run: the reward plot, and the held-out table of the initial and trained captioner.
    run = tmp_path / "run"
    assert (run / "reward.png").read_bytes()[:4] == b"\x89PNG"
    table = (run / "eval.md").read_text()
    assert "| initial |" in table and "| trained |" in table and "| change |" in table
    # `eval --run` evaluates the finished run again, with the run's own config.
    again = launch(["eval", "--run", str(run), "eval.max_prompts=4", "eval.samples_per_prompt=2"])
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out[-3000:]
    assert "| 4 x 2 |" in out and "| change |" in out


@pytest.mark.integration
def test_the_run_seed_decides_prompts_and_captions(tmp_path):
    """`seed=N` fixes every random choice: the same seed gives the same first-step groups, another
    seed other prompts and captions. One actor at eta = 0 makes the first step deterministic: the
    gate admits exactly that step's groups, all sampled by the initial weights, before any update."""

    def first_step(seed: int, run: str) -> list[tuple[str, tuple[str, ...]]]:
        args = [*short_run(tmp_path, steps=1, run=run), f"seed={seed}", "rollout.num_actors=1",
                "learner.max_staleness=0", "eval.at_end=false"]
        proc = launch(args)
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
        return sorted((g["prompt_id"], tuple(g["captions"])) for g in read_rollouts(tmp_path / run) if g["step"] == 0)

    first, again, other = first_step(1, "seed1"), first_step(1, "seed1-again"), first_step(2, "seed2")
    assert len(first) == 2  # learner.groups_per_step
    assert first == again
    assert [prompt for prompt, _ in first] != [prompt for prompt, _ in other]
    assert {c for _, captions in first for c in captions} != {c for _, captions in other for c in captions}


@pytest.mark.integration
@pytest.mark.parametrize("weight_sync", ["zmq", "gloo"])
def test_a_run_on_vllm_engines_trains_like_the_default(tmp_path, weight_sync):
    """Captioner and reasoner on vLLM (the CPU build): same run, same metrics, nothing left
    behind; with weights published as frames (zmq) or broadcast into the engines (gloo)."""
    # With max_staleness 2 (the default), step 3 takes no sample older than version 1: the run
    # gets there only if the published weights reached the actors.
    steps = 4
    overrides = ["rollout.engine=vllm", "serve.engine=vllm", f"learner.weight_sync.backend={weight_sync}", "eval.at_end=false"]
    proc = launch([*short_run(tmp_path, steps=steps), *overrides])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(steps))
    assert all(0.0 <= m["reward/mean"] <= 1.0 for m in metrics)
    assert metrics[-1]["rollout/policy_version_min"] >= 1
    assert all(0.0 <= m["rollout/mixed_version_fraction"] <= 1.0 for m in metrics)
    # vLLM's behaviour logprobs against the learner's, on samples of the weights being trained:
    # float32 on both sides, so ~1e-6 (see tests/test_engine_conformance.py for the bound).
    # (null on a step with no sample of the weights being trained)
    on_policy = [diff for m in metrics if (diff := m["logprob/on_policy_abs_diff"]) is not None]
    assert on_policy and max(on_policy) < 1e-4
    assert wait_gone(proc.pid) == []


@pytest.mark.integration
@pytest.mark.parametrize(
    "stop, engine, exit_code",
    [
        (lambda pid: os.killpg(pid, signal.SIGINT), "transformers", 130),  # what a terminal's Ctrl-C does
        # `kill` of the driver; the vLLM engines run in processes of their own, which must go too
        (lambda pid: os.kill(pid, signal.SIGTERM), "vllm", 143),
    ],
    ids=["ctrl-c", "kill"],
)
def test_a_stop_signal_stops_every_role(tmp_path, stop, engine, exit_code):
    proc = launch([*short_run(tmp_path, steps=10_000), f"rollout.engine={engine}", "eval.at_end=false"])
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.is_file() and metrics.read_text().strip()) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.5)
    stop(proc.pid)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == exit_code, out[-3000:]
    assert wait_gone(proc.pid) == []
