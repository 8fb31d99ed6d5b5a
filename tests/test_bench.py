"""The throughput benchmark's arithmetic (hand-worked), its config checks, and (slow) a whole run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.bench_results import Layout, RunResult, UnpinnedRuns, bench_report, bench_table, core_limit
from benchmarks.processes import CpuMark, RoleMemory, busy_fractions
from benchmarks.profile_roles import inclusive_shares
from benchmarks.stages import StageRate, measured_rate
from configs.commands import BenchCommandConfig, parse_cores
from configs.load import ConfigError, load_config
from learner.metrics import read_metrics
from wire import metric_names as names

ROOT = Path(__file__).resolve().parent.parent


def _layout(learner=(0,), rollout=(1,), serve=(1,)) -> Layout:
    return Layout(
        cores={"learner": learner, "rollout": rollout, "serve": serve},
        processes={"learner": 1, "rollout": 1, "serve": 1},
        torch_threads={"learner": 1, "rollout": 1, "serve": 1},
    )


def test_measured_rate_counts_the_steps_after_warm_up(tmp_path):
    # Steps 0..5 end at 1, 3, 4, 6, 8, 9 s. Two warm-up steps: timing starts at the end of step 1
    # (3 s) and runs to the end of step 5 (9 s): 4 steps of 8 groups in 6 s.
    ends = [1.0, 3.0, 4.0, 6.0, 8.0, 9.0]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"step": i, names.TIME_ELAPSED_S: t}) + "\n" for i, t in enumerate(ends)))
    rate = measured_rate(read_metrics(metrics), warmup_steps=2, groups_per_step=8)
    assert rate.groups == 32 and rate.seconds == pytest.approx(6.0)
    assert rate.groups_per_s == pytest.approx(32 / 6)
    with pytest.raises(ValueError, match="warm-up"):
        measured_rate(read_metrics(metrics), warmup_steps=6, groups_per_step=8)


def test_stages_on_shared_cores_split_them():
    # Generation (4 groups/s) and scoring (2 groups/s) share core 1: one group costs that core
    # 1/4 + 1/2 = 0.75 s, so it does 4/3 groups/s; the learner's core 0 does 3. The limit is 4/3.
    stages = {"generation": StageRate(4, 1.0), "scoring": StageRate(2, 1.0), "learner": StageRate(3, 1.0)}
    assert core_limit(stages, _layout()) == pytest.approx(4 / 3)
    # On three cores of their own, the slowest stage is the limit.
    assert core_limit(stages, _layout(serve=(2,))) == pytest.approx(2.0)


def test_busy_fraction_is_cpu_time_over_what_the_cores_could_give():
    start = CpuMark(at=100.0, cpu_s={"learner": {1: 10.0, 3: 4.0}})
    # In 10 s, process 1 used 5 s, process 2 started and used 1 s; process 3 ended (not counted).
    end = CpuMark(at=110.0, cpu_s={"learner": {1: 15.0, 2: 1.0}})
    assert busy_fractions(start, end, {"learner": (0,)})["learner"] == pytest.approx(0.6)
    assert busy_fractions(start, end, {"learner": (0, 1)})["learner"] == pytest.approx(0.3)


def test_report_ratios_and_table():
    config = load_config(None, ["bench.warmup_steps=1", "bench.steps=4"], BenchCommandConfig)
    stages = {"generation": StageRate(60, 10.0), "scoring": StageRate(40, 10.0), "learner": StageRate(80, 10.0)}
    busy = {"learner": 0.5, "rollout": 0.4, "serve": 0.3}
    sync = RunResult(rate=StageRate(20, 10.0), busy=busy, staleness_mean=0.0)
    asynchronous = RunResult(rate=StageRate(30, 10.0), busy=busy, staleness_mean=1.5)
    memory = RoleMemory(peak={"learner": 2**30}, marks={"async_warm": {"learner": 100}, "async_end": {"learner": 105}})
    unpinned = UnpinnedRuns(
        RunResult(StageRate(20, 10.0), busy, 0.0),
        RunResult(StageRate(36, 10.0), busy, 1.8),
        RunResult(StageRate(27, 10.0), busy, 1.8),
    )
    report = bench_report(config, _layout(), stages, sync, asynchronous, memory, unpinned)
    assert report["speedup_vs_sync"] == pytest.approx(3.0 / 2.0)
    assert report["unpinned"]["speedup_vs_sync"] == pytest.approx(3.6 / 2.0)
    # Slowest stage: scoring at 4 groups/s; 3 / 4.
    assert report["slowest_stage"] == "scoring" and report["pipeline_efficiency"] == pytest.approx(0.75)
    # Core 1 holds generation (6/s) and scoring (4/s): 1 / (1/6 + 1/4) = 2.4 groups/s.
    assert report["core_limit_groups_per_s"] == pytest.approx(2.4)
    assert report["peak_rss_mb"]["learner"] == pytest.approx(1024) and report["rss_growth_async"][
        "learner"
    ] == pytest.approx(0.05)
    table = bench_table(report)
    assert "speedup_vs_sync **1.50**" in table and "pipeline_efficiency **0.75**" in table
    assert "unpinned (as a user's run): speedup_vs_sync **1.80**" in table
    # Evaluating while training: 2.7 groups/s against 3.6 without, a quarter less.
    assert report["unpinned"]["async_eval"]["throughput_cost"] == pytest.approx(0.25)
    assert "every 10 steps costs **25%**" in table


def test_cores_are_checked():
    assert parse_cores("0, 2") == (0, 2) and parse_cores("a") == () and parse_cores("") == ()
    with pytest.raises(ConfigError, match="bench.serve_cores"):
        load_config(None, ["bench.serve_cores=x"], BenchCommandConfig)
    with pytest.raises(ValueError, match=r"bench.learner_cores names cores \[4096\]"):
        Layout.of(load_config(None, ["bench.learner_cores=4096"], BenchCommandConfig))


def test_bench_needs_its_output_folder():
    done = subprocess.run([sys.executable, "launch.py", "bench"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "out=PATH" in done.stderr


def test_profile_counts_a_function_once_per_stack(tmp_path):
    stacks = tmp_path / "stacks.txt"
    # `f` recurses in the first stack (3 samples) and is absent from the second (2 samples).
    stacks.write_text("main;f;f;g 3\nmain;h 2\nnot a stack line\n")
    per_function, total = inclusive_shares(stacks)
    assert total == 5
    assert per_function == {"main": 5, "f": 3, "g": 3, "h": 2}


def test_the_learner_alone_stage_resends_generated_groups_as_new_groups():
    """The learner-alone stage trains more steps than there are generated groups (the defaults:
    35 steps of 8 groups on 240): every send must reach the learner, none dropped as a repeat."""
    from benchmarks.stages import ReplayFeeder
    from learner.replay import ReplayQueue
    from tests.test_messages import admission_for_made_groups, make_group

    generated = [make_group(prompt_position=p) for p in range(3)]
    sends = 3 * len(generated) + 1
    queue = ReplayQueue(
        "127.0.0.1", 0, capacity_groups=sends, capacity_bytes=2**30, admission=admission_for_made_groups()
    )
    feeder = ReplayFeeder(queue.endpoint, generated, sends)
    try:
        taken = [queue.get(timeout=5) for _ in range(sends)]
        assert all(group is not None for group in taken)
        assert queue.counters.duplicates == 0
        assert len({group.group_id for group in taken}) == sends
    finally:
        feeder.close()
        queue.close()


@pytest.mark.slow
def test_bench_runs_and_writes_its_report(tmp_path):
    out = tmp_path / "bench"
    command = [
        sys.executable,
        "launch.py",
        "bench",
        f"out={out}",
        "bench.warmup_steps=1",
        "bench.steps=2",
        "learner.groups_per_step=4",
        "bench.eval_every_steps=1",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "bench.json").read_text())
    for stage in ("generation", "scoring", "learner"):
        assert report["stages"][stage]["groups_per_s"] > 0
    assert report["speedup_vs_sync"] == pytest.approx(report["async"]["groups_per_s"] / report["sync"]["groups_per_s"])
    assert report["sync"]["staleness_mean"] == 0 and report["unpinned"]["sync"]["staleness_mean"] == 0
    assert all(report["peak_rss_mb"][role] > 0 for role in ("learner", "rollout", "serve"))
    assert "speedup_vs_sync" in done.stdout
    assert (
        report["unpinned"]["async_eval"]["groups_per_s"] > 0
        and "evaluation while training every 1 steps" in done.stdout
    )
    # The learner alone trained (1 + 2) steps x 4 groups on fewer generated groups: each resent as new.
    assert report["stages"]["generation"]["groups"] < (1 + 2) * 4


def test_the_gpu_learner_script_runs_its_whole_path_on_the_tiny_shape(tmp_path, tiny_cache):
    """The GPU benchmark is one prepared script run on a lent machine; here the same code on the
    bundled tiny shape on the CPU, so that it cannot rot between lendings."""
    from driver.inputs import resolve_inputs
    from tests.tiny_task import TINY_TASK_OVERRIDES

    inputs = resolve_inputs(load_config(overrides=[f"task.cache_dir={tiny_cache}", *TINY_TASK_OVERRIDES]))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.gpu_learner",
            f"out={tmp_path / 'gpu'}",
            "--processor",
            inputs.captioner,
            "--tiny",
            "--groups-per-micro-batch",
            "2",
        ],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "gpu" / "gpu_learner.json").read_text())
    # 2 prompts x G=4 sequences of 8 new tokens (the tiny model may end one early at its EOS).
    assert result["sequences"] == 8 and 8 <= result["generated_tokens"] <= 8 * 8
    assert result["groups_per_update"] == 2 and result["update_tokens"] > result["completion_tokens"] > 0
    # Both groups in one pass, each image encoded once: 2 images' patches, not 2 x G.
    assert result["groups_per_micro_batch"] == 2 and result["vision_patches"] == 2 * (112 // 14) ** 2
    assert "| GRPO update (DeepSpeed ZeRO-1, bf16) | 2 groups" in (tmp_path / "gpu" / "gpu_learner.md").read_text()


def test_update_flops_count_the_language_model_six_times_and_the_frozen_vision_twice():
    from types import SimpleNamespace

    import torch

    from benchmarks.gpu_learner import update_flops

    language = torch.nn.ModuleDict(
        {"embed_tokens": torch.nn.Embedding(10, 4), "layer": torch.nn.Linear(4, 4, bias=False)}
    )
    model = SimpleNamespace(
        model=SimpleNamespace(language_model=language, visual=torch.nn.Linear(3, 2, bias=False)),
        lm_head=torch.nn.Linear(4, 10, bias=False),
    )
    # language matmuls 16 + head 40 = 56 parameters, vision 6: 6 * 56 * 100 tokens + 2 * 6 * 7 patches
    assert update_flops(model, tokens=100, patches=7) == 6 * 56 * 100 + 2 * 6 * 7
