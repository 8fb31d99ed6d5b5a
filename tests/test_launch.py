"""launch.py as a user runs it: config errors, a whole short run, Ctrl-C; no process left behind."""

import json
import os
import signal
import time
from pathlib import Path

import pytest

from learner.metrics import read_metrics
from learner.rollout_log import read_rollouts
from tests.run_files import positions, step_prompts, wait_for_checkpoint
from tests.tiny_task import TINY_TASK_OVERRIDES
from wire import metric_names as names


def short_run(tmp_path: Path, cache: Path, steps: int, run: str = "run") -> list[str]:
    return [
        f"run_dir={tmp_path / run}",
        f"task.cache_dir={cache}",
        *TINY_TASK_OVERRIDES,
        f"learner.total_steps={steps}",
        "learner.groups_per_step=2",
        "rollout.group_size=4",
        "rollout.sampling.max_new_tokens=8",
    ]


def test_eval_needs_a_run_or_a_checkpoint(run_launch):
    code, out = run_launch(["eval"]).finish(timeout=60)
    assert code == 2
    assert "--run DIR or --checkpoint DIR" in out


def test_a_misspelled_key_fails_at_once_naming_it(run_launch):
    code, out = run_launch(["rollout.num_actor=3"]).finish(timeout=60)
    assert code == 2
    assert "unknown config key 'rollout.num_actor'" in out


def test_the_live_service_needs_a_valid_http_port(run_launch):
    code, out = run_launch(["serve", "serve.http_port=0"]).finish(timeout=60)
    assert code == 2
    assert "serve.http_port must be in [1, 65535]" in out


def first_step_groups(run_dir: Path) -> list[tuple[str, tuple[str, ...]]]:
    return sorted((g["prompt_id"], tuple(g["captions"])) for g in read_rollouts(run_dir) if g["step"] == 0)


def _assert_wandb_logged_the_run(run_dir: Path) -> None:
    """The offline W&B run holds every metrics.jsonl row (by learner step, values equal), the
    run's config and its reward plot."""
    from driver.tracking import STEP_KEY
    from tests.wandb_records import history, offline_run_file, run_config

    run_file = offline_run_file(run_dir)
    logged = history(run_file)
    rows = step_rows(run_dir)
    metric_rows = [row for row in logged if names.REWARD_MEAN in row]
    assert [row[STEP_KEY] for row in metric_rows] == [row[names.STEP] for row in rows]
    assert [row[names.REWARD_MEAN] for row in metric_rows] == pytest.approx([row[names.REWARD_MEAN] for row in rows])
    assert run_config(run_file)["seed"] == 1 and run_config(run_file)["logging"]["wandb_project"] == "tests"
    plots = [row for row in logged if row.get("reward_plot/_type") == "image-file"]
    assert len(plots) == 1 and (run_file.parent / "files" / plots[0]["reward_plot/path"]).is_file()


@pytest.mark.integration
def test_a_run_exits_zero_leaves_no_process_and_its_seed_decides_prompts_and_captions(tmp_path, tiny_cache, run_launch):
    """A whole short run as a user starts it, then `seed=N` fixing every random choice: the same
    seed gives the same first-step groups (also in a run killed and resumed), another seed other
    prompts and captions. One actor at eta = 0 makes the first step deterministic: the gate
    admits exactly that step's groups, all sampled by the initial weights, before any update.
    (One test: each run costs a minute.)"""
    deterministic = ["rollout.num_actors=1", "learner.max_staleness=0"]
    # Weights & Biases beside TensorBoard, offline: the run is written under RUN_DIR/wandb/.
    tracked = ["logging.wandb=true", "logging.wandb_project=tests"]
    run = run_launch(
        [*short_run(tmp_path, tiny_cache, steps=3, run="seed1"), "seed=1", *deterministic, *tracked],
        env={"WANDB_MODE": "offline"},
    )
    code, out = run.finish(timeout=600)
    assert code == 0, out[-3000:]
    run_dir = tmp_path / "seed1"
    _assert_wandb_logged_the_run(run_dir)
    rows = step_rows(run_dir)
    assert [row[names.STEP] for row in rows] == [0, 1, 2]
    assert [row[names.STALENESS_MAX] for row in rows] == [0, 0, 0]  # eta = 0: on-policy
    assert "learner steps" in out  # the progress bar
    assert run.leftovers() == []
    # The end of a run: the reward plot, and the held-out table of the initial and trained captioner.
    assert (run_dir / "reward.png").read_bytes()[:4] == b"\x89PNG"
    table = (run_dir / "eval.md").read_text()
    assert "| initial |" in table and "| trained |" in table and "| change |" in table
    # `eval --run` evaluates the finished run again, with the run's own config.
    code, out = run_launch(["eval", "--run", str(run_dir), "eval.max_prompts=4", "eval.samples_per_prompt=2"]).finish(
        timeout=300
    )
    assert code == 0, out[-3000:]
    assert "| 4 x 2 |" in out and "| change |" in out

    def first_step(seed: int, run: str) -> list[tuple[str, tuple[str, ...]]]:
        args = [*short_run(tmp_path, tiny_cache, steps=1, run=run), f"seed={seed}", *deterministic, "eval.at_end=false"]
        code, out = run_launch(args).finish(timeout=600)
        assert code == 0, out[-3000:]
        return first_step_groups(tmp_path / run)

    first, other = first_step_groups(run_dir), first_step(2, "seed2")
    assert len(first) == 2  # learner.groups_per_step
    assert first_step_groups(resumed_after_a_kill(tmp_path, tiny_cache, run_launch, deterministic)) == first
    assert [prompt for prompt, _ in first] != [prompt for prompt, _ in other]
    assert {c for _, captions in first for c in captions} != {c for _, captions in other for c in captions}


def resumed_after_a_kill(tmp_path: Path, cache: Path, run_launch, deterministic: list[str]) -> Path:
    """The seed-1 run again, killed (SIGKILL, all its processes, as a crash of its machine) after
    its first checkpoint and resumed: at eta = 0 step k takes exactly actor 0's stream positions
    [2k, 2k + 2), so it must take the same prompts at every step as the seed-1 run, never
    interrupted: none skipped, none taken twice, what was queued or being scored at the kill
    generated again from the same prompts; and its metrics continue, no step twice."""
    cut_dir = tmp_path / "seed1-cut"
    args = [*short_run(tmp_path, cache, steps=1000, run="seed1-cut"), "seed=1", *deterministic, "eval.at_end=false"]
    cut = run_launch([*args, "learner.checkpoint_every=1"])
    saved = wait_for_checkpoint(cut, cut_dir)
    cut.kill()
    assert cut.leftovers() == []
    code, out = run_launch([f"resume={cut_dir}", "learner.total_steps=3"]).finish(timeout=600)
    assert code == 0, out[-3000:]
    assert f"resuming at step {saved} (policy version {saved})" in out
    assert step_prompts(cut_dir) == step_prompts(tmp_path / "seed1")
    assert sorted(positions(cut_dir)) == [(0, p) for p in range(3 * 2)]
    metrics = step_rows(cut_dir)
    assert [(m["step"], m["policy_version"]) for m in metrics] == [(0, 1), (1, 2), (2, 3)]
    assert metrics[2][names.TIME_ELAPSED_S] > metrics[1][names.TIME_ELAPSED_S] > metrics[0][names.TIME_ELAPSED_S]
    summary = json.loads((cut_dir / "summary.json").read_text())
    assert (summary["groups_lost"], summary["groups_duplicated"], summary["groups_consumed"]) == (0, 0, 6)
    return cut_dir


VLLM_RUN = ["rollout.engine=vllm", "serve.engine=vllm", "eval.at_end=false"]


def assert_trained_on_vllm(metrics: list[dict], steps: int, max_staleness: int) -> None:
    """The first `steps` metric rows of a run on vLLM engines: every step, sane rewards, no sample
    beyond the staleness bound, pushed weights reaching the actors, and behaviour logprobs
    matching the learner's."""
    assert [m["step"] for m in metrics[:steps]] == list(range(steps))
    assert all(0.0 <= m[names.REWARD_MEAN] <= 1.0 for m in metrics)
    assert max(m[names.STALENESS_MAX] for m in metrics) <= max_staleness
    # With max_staleness <= 2, step 3 takes no sample older than version 1: the run gets there
    # only if the published weights reached the actors.
    assert metrics[3][names.ROLLOUT_POLICY_VERSION_MIN] >= 1
    assert all(0.0 <= m[names.ROLLOUT_MIXED_VERSION_FRACTION] <= 1.0 for m in metrics)
    # vLLM's behaviour logprobs against the learner's, on samples of the weights being trained:
    # float32 on both sides, so ~1e-6 (see tests/test_engine_conformance.py for the bound).
    # (null on a step with no sample of the weights being trained)
    on_policy = [diff for m in metrics if (diff := m[names.LOGPROB_ON_POLICY_ABS_DIFF]) is not None]
    assert on_policy and max(on_policy) < 1e-4


def step_rows(run_dir: Path) -> list[dict]:
    """The run's learner-step rows so far ([] before the first)."""
    path = run_dir / "metrics.jsonl"
    return read_metrics(path) if path.is_file() else []


@pytest.mark.integration
# ~100 s; the default run keeps a vLLM run by gloo broadcast (tests/test_multinode.py) and zmq
# frames into vLLM (test_engine_conformance).
@pytest.mark.slow
def test_a_run_on_vllm_engines_trains_like_the_default(tmp_path, tiny_cache, run_launch):
    """Captioner and reasoner on vLLM (the CPU build), weights published as frames (zmq), at
    eta = 1: same run, same metrics, nothing left behind."""
    steps = 4
    run = run_launch(
        [
            *short_run(tmp_path, tiny_cache, steps=steps),
            *VLLM_RUN,
            "learner.weight_sync.backend=zmq",
            "learner.max_staleness=1",
        ]
    )
    code, out = run.finish(timeout=600)
    assert code == 0, out[-3000:]
    assert_trained_on_vllm(step_rows(tmp_path / "run"), steps, max_staleness=1)
    assert run.leftovers() == []


def wait_for_steps(run, run_dir: Path, steps: int, timeout: float = 400) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(metrics := step_rows(run_dir)) < steps and time.monotonic() < deadline:
        assert run.proc.poll() is None, run.output()[-3000:]
        time.sleep(0.5)
    return metrics


@pytest.mark.integration
@pytest.mark.parametrize(
    "stop, overrides, steps, exit_code",
    [
        # what a terminal's Ctrl-C does, to a run on the transformers engine
        (lambda pid: os.killpg(pid, signal.SIGINT), ["rollout.engine=transformers", "eval.at_end=false"], 1, 130),
        # `kill` of the driver of a run on vLLM engines with weights broadcast into them (gloo),
        # once it has trained 4 steps; the engines run in processes of their own, which must go
        # too. Slow (~130 s): the default run trains on vLLM engines by gloo broadcast in
        # tests/test_multinode.py, and stops runs by signal here with ctrl-c.
        pytest.param(
            lambda pid: os.kill(pid, signal.SIGTERM),
            [*VLLM_RUN, "learner.weight_sync.backend=gloo"],
            4,
            143,
            marks=pytest.mark.slow,
        ),
    ],
    ids=["ctrl-c", "kill-vllm-gloo"],
)
def test_a_stop_signal_stops_every_role(tmp_path, tiny_cache, stop, overrides, steps, exit_code, run_launch):
    run = run_launch([*short_run(tmp_path, tiny_cache, steps=10_000), *overrides])
    metrics = wait_for_steps(run, tmp_path / "run", steps)
    if steps > 1:
        assert_trained_on_vllm(metrics, steps, max_staleness=2)  # the default
    stop(run.pid)
    code, out = run.finish(timeout=120)
    assert code == exit_code, out[-3000:]
    assert run.leftovers() == []


def test_infer_refuses_a_file_that_is_no_image_before_starting_anything(run_launch, tmp_path):
    not_image = tmp_path / "notes.png"
    not_image.write_text("plain text")
    code, out = run_launch(["infer", "--image", str(not_image), "--question", "q"]).finish(timeout=60)
    assert code == 2 and "no readable PNG/JPEG/WEBP/GIF image" in out
    code, out = run_launch(["infer", "--image", str(tmp_path / "absent.png"), "--question", "q"]).finish(timeout=60)
    assert code == 2 and "no image file at" in out
