"""The documented commands (README.md and docs/*.md) that no other test runs, each run as documented, on the tiny task
or with fewer rounds: the same code paths as the documented sizes, not their numbers.

Where the others run: `python launch.py` and `seed=`/`resume=` (tests/test_launch.py, and with the
default sizes but fewer steps tests/test_learning.py); `eval --run` (test_launch), `eval` on each
layout (test_your_data); `serve`, `infer` and `serve.engine=openai` (test_live_service); `soak`
(test_faults); `bench` (test_bench); `keys` and the multi-node run (test_curve, test_multinode);
`alternate` and `policy.role=reasoner` (test_policy_roles, test_learning); `check-data`
(test_data_layouts); `benchmarks.time_to_accuracy` (test_time_to_accuracy); `benchmarks.gpu_learner
--tiny` (test_bench). `benchmarks.profile_roles` needs py-spy and ptrace rights over the roles,
which a test cannot assume: its parsing is tested in test_bench.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import task.shipped
import task.shipped_store
from task.bundle import COMPLETE_MARKER
from tests.tiny_task import TINY_TASK_OVERRIDES

ROOT = Path(__file__).resolve().parents[1]


def run_module(module: str, *args: str, timeout: float = 900) -> str:
    """`python -m MODULE ARGS` in the repository, as a user types it; its output, once it exited 0."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> list[str]:
    """The overrides of a tiny bundled task in a cache of this module's."""
    return [f"task.cache_dir={tmp_path_factory.mktemp('cache')}", *TINY_TASK_OVERRIDES]


@pytest.mark.slow
def test_build_then_ship_then_check_a_fresh_build(tiny, tmp_path, monkeypatch, capsys):
    """`launch.py build`, `task.shipped ship` and `task.shipped check` on the tiny recipe, shipped
    into a folder of the test's rather than the package."""
    done = subprocess.run(
        [sys.executable, "launch.py", "build", *tiny], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    cache = Path(tiny[0].removeprefix("task.cache_dir="))
    assert (cache / "seed0" / COMPLETE_MARKER).is_file()

    monkeypatch.setattr(task.shipped_store, "SHIPPED", tmp_path / "shipped")
    assert task.shipped.main(["check", *tiny]) == 2  # nothing shipped yet for this recipe's seed
    assert task.shipped.main(["ship", *tiny]) == 0
    assert (tmp_path / "shipped" / "seed0" / task.shipped_store.RECIPE_FILE).is_file()
    # The build is reproducible from its seed: a fresh one reaches the shipped one's quality.
    assert task.shipped.main(["check", *tiny]) == 0
    assert "a fresh build reaches the shipped build's quality" in capsys.readouterr().out


@pytest.mark.slow
def test_layouts_then_eval_with_a_checkpoint_and_a_config_file(tiny, tmp_path):
    """`task.layouts DIR`, then `launch.py eval data=... --checkpoint DIR` on its MathVista file,
    with the sizes coming from a `--config` file instead of the command line."""
    output = run_module("task.layouts", str(tmp_path / "layouts"), *tiny)
    mathvista = tmp_path / "layouts" / "mathvista" / "testmini.json"
    assert mathvista.is_file() and f"launch.py check-data {tmp_path / 'layouts'}" in output
    config = tmp_path / "my.yaml"
    config.write_text("eval:\n  max_prompts: 4\n  samples_per_prompt: 1\n  prompts_per_batch: 4\n")
    captioner = Path(tiny[0].removeprefix("task.cache_dir=")) / "seed0" / "captioner"
    command = [
        sys.executable,
        "launch.py",
        "eval",
        "--config",
        str(config),
        f"data={mathvista}",
        f"out={tmp_path / 'eval'}",
        "--checkpoint",
        str(captioner),
        *tiny,
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    items = [json.loads(line) for line in (tmp_path / "eval" / "items.jsonl").read_text().splitlines()]
    assert len({row["id"] for row in items}) == 4 and {row["sample"] for row in items} == {0}


def test_the_codec_benchmark_prints_its_table_and_leaves_benchmarks_md():
    before = (ROOT / "BENCHMARKS.md").read_text()
    assert "| group | frame (KB) |" in run_module("benchmarks.wire", "--rounds", "5")
    assert (ROOT / "BENCHMARKS.md").read_text() == before


@pytest.mark.slow
def test_the_transport_benchmark_runs_its_tables():
    output = run_module("benchmarks.transport", "--rounds", "1")
    assert "| bundled task (4 KB) |" in output and "| 100M parameters |" in output


@pytest.mark.slow
def test_the_engines_benchmark_runs_both_engines():
    """On the bundled default task (filled from the shipped build), vLLM included."""
    output = run_module("benchmarks.engines", "--rounds", "1", timeout=1200)
    assert "transformers" in output and "vllm" in output


@pytest.mark.slow
def test_the_learner_update_benchmark_times_every_variant(tiny):
    output = run_module("benchmarks.learner_update", "--steps", "1", *tiny)
    assert "| update | s per step (median) |" in output and "| before: image per caption" in output


@pytest.mark.slow
def test_the_recipes_benchmark_trains_every_recipe_and_says_which_did_not_learn(tiny, tmp_path):
    """Two steps of each recipe on one seed: too few to learn, so the command exits 1 and says so."""
    out = tmp_path / "recipes"
    command = [
        sys.executable,
        "-m",
        "benchmarks.recipes",
        f"out={out}",
        "--seeds",
        "0",
        *tiny,
        "learner.total_steps=2",
        "learner.groups_per_step=2",
        "rollout.group_size=4",
        "rollout.sampling.max_new_tokens=8",
        "eval.max_prompts=4",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 1, done.stderr[-3000:]
    runs = json.loads((out / "recipes.json").read_text())["runs"]
    assert {run["paper"] for run in runs} == {"RACRO", "CapRL", "Perception-R1", "Perceive-to-Reason"}
    assert (out / "recipes.md").is_file()


@pytest.mark.slow
def test_the_live_load_benchmark_measures_every_phase(tiny, tmp_path):
    out = tmp_path / "live"
    run_module(
        "benchmarks.live_load",
        f"out={out}",
        "--requests",
        "4",
        "--concurrency",
        "2",
        "--duration",
        "3",
        *tiny,
        "learner.total_steps=3",
        "learner.groups_per_step=2",
        "rollout.group_size=4",
        timeout=1200,
    )
    assert (out / "live_load.json").is_file() and (out / "live_load.md").is_file()
