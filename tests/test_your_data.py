"""Your own data, end to end as a user runs it: training from ViRL39K's two parquet layouts, and
the benchmark evaluation on MathVista's JSON and VLMEvalKit's TSV in the three modes, with two
reasoners reading the same cached captions. The files are the bundled task's, written in those
layouts by `task.layouts`."""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from configs.load import load_config
from driver.inputs import resolve_inputs
from learner.metrics import read_metrics
from learner.rollout_log import read_rollouts
from records.vqa import read_records
from task.checkpoints import build_tiny_reasoner
from task.layouts import EXCLUDED_SOURCE, write_layouts
from tests.tiny_task import TINY_TASK_OVERRIDES

pytestmark = pytest.mark.integration
STEPS = 2
ITEMS, RESPONSES = 4, 2


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    inputs = resolve_inputs(load_config(overrides=[f"task.cache_dir={cache}", *TINY_TASK_OVERRIDES]))
    layouts = write_layouts(Path(inputs.eval_file), tmp_path_factory.mktemp("layouts"))
    return cache, inputs, layouts


def files_run(data, tmp_path: Path, train_file: Path, *extra: str) -> list[str]:
    cache, inputs, _ = data
    return [
        "task.kind=files",
        f"task.train_file={train_file}",
        f"task.cache_dir={cache}",
        f"models.captioner={inputs.captioner}",
        f"models.reasoner={inputs.reasoner}",
        f"run_dir={tmp_path / 'run'}",
        f"learner.total_steps={STEPS}",
        "learner.groups_per_step=2",
        "rollout.group_size=4",
        "rollout.sampling.max_new_tokens=8",
        *extra,
    ]


def trained_prompts(run_dir: Path) -> set[str]:
    assert [m["step"] for m in read_metrics(run_dir / "metrics.jsonl")] == list(range(STEPS))
    return {group["prompt_id"] for group in read_rollouts(run_dir)}


def test_training_from_the_virl39k_release_without_deepscaler_rows(data, tmp_path, run_launch):
    """The release layout for training (DeepScaleR rows filtered out, bad rows dropped with a
    warning), and the mirrored layout as the held-out split evaluated at the end."""
    _, inputs, layouts = data
    args = files_run(
        data,
        tmp_path,
        layouts.virl39k_release,
        f"task.exclude_sources=[{EXCLUDED_SOURCE}]",
        f"task.eval_file={layouts.virl39k_mirrored}",
        "eval.max_prompts=4",
        "eval.samples_per_prompt=1",
    )
    code, out = run_launch(args).finish(timeout=600)
    assert code == 0, out[-3000:]
    assert "4 unusable rows left out (1 several images, 1 missing image, 1 unreadable image, 1 empty answer)" in out
    records = read_records(Path(inputs.eval_file))
    allowed = {r.id for r in records[2:]}  # the layouts' first two rows are the DeepScaleR ones
    assert trained_prompts(tmp_path / "run") <= allowed
    assert "| initial |" in (tmp_path / "run" / "eval.md").read_text()


# A run of its own (~70 s): the default set reads the mirrored layout as the held-out split of
# the release-layout run above, and tests/test_data_layouts.py reads every row of it.
@pytest.mark.slow
def test_training_from_the_mirrored_virl39k_layout(data, tmp_path, run_launch):
    _, inputs, layouts = data
    code, out = run_launch(files_run(data, tmp_path, layouts.virl39k_mirrored, "eval.at_end=false")).finish(timeout=600)
    assert code == 0, out[-3000:]
    assert "3 unusable rows left out" in out
    assert trained_prompts(tmp_path / "run") <= {r.id for r in read_records(Path(inputs.eval_file))}


def evaluate(run_launch, data, benchmark: Path, out: Path, reasoners: dict[str, str], *extra: str) -> str:
    cache = data[0]
    args = [
        "eval",
        f"data={benchmark}",
        f"out={out}",
        f"task.cache_dir={cache}",
        *TINY_TASK_OVERRIDES,
        f"eval.max_prompts={ITEMS}",
        f"eval.samples_per_prompt={RESPONSES}",
        "eval.prompts_per_batch=4",
        *(f"eval.reasoners.{name}={path}" for name, path in reasoners.items()),
        *extra,
    ]
    code, output = run_launch(args).finish(timeout=600)
    assert code == 0, output[-3000:]
    return output


def check_tables(out: Path, reasoners: list[str]) -> list[dict]:
    """The three files agree: every accuracy in eval.csv is the mean over items of the share of
    right responses in items.jsonl; eval.md shows each overall one."""
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    runs = [("direct", "")] + [(mode, r) for r in reasoners for mode in ("caption", "two_stage")]
    assert len(items) == ITEMS * RESPONSES * len(runs)
    shares = defaultdict(list)
    for row in items:
        shares[(row["mode"], row["reasoner"], row["id"])].append(row["correct"])
    table = {(r["mode"], r["reasoner"], r["category"]): r for r in csv.DictReader((out / "eval.csv").open())}
    markdown = (out / "eval.md").read_text()
    for mode, reasoner in runs:
        per_item = [sum(v) / len(v) for (m, r, _), v in shares.items() if (m, r) == (mode, reasoner)]
        assert len(per_item) == ITEMS
        row = table[(mode, reasoner, "all")]
        assert float(row["accuracy"]) == pytest.approx(statistics.fmean(per_item))
        assert f"| {mode} | {reasoner or '-'} | {float(row['accuracy']):.3f} |" in markdown
    assert "## By category" in markdown and (out / "eval.png").is_file() and (out / "config.yaml").is_file()
    return items


def test_benchmarks_in_three_modes_with_two_reasoners_on_cached_captions(data, tmp_path, run_launch):
    cache, inputs, layouts = data
    tokenizer = AutoTokenizer.from_pretrained(inputs.reasoner)
    untrained = str(build_tiny_reasoner(tmp_path / "untrained", tokenizer, seed=1))
    reasoners = {"trained": inputs.reasoner, "untrained": untrained}

    output = evaluate(run_launch, data, layouts.mathvista, tmp_path / "mathvista", reasoners)
    assert f"captioner outputs: 0 of {2 * ITEMS} found" in output
    items = check_tables(tmp_path / "mathvista", list(reasoners))
    # Both reasoners read the very same captions and tentative answers.
    read = defaultdict(set)
    for row in items:
        if row["mode"] != "direct":
            read[(row["id"], row["sample"], row["mode"])].add((row["caption"], row["tentative_answer"]))
    assert all(len(texts) == 1 for texts in read.values())
    direct = {(r["id"], r["sample"]): r["response"] for r in items if r["mode"] == "direct"}
    assert all(r["tentative_answer"] == direct[(r["id"], r["sample"])] for r in items if r["mode"] == "two_stage")

    # Another reasoner later: the captions come from the cache, no captioner runs.
    output = evaluate(run_launch, data, layouts.mathvista, tmp_path / "again", {"again": inputs.reasoner})
    assert f"captioner outputs: {2 * ITEMS} of {2 * ITEMS} found" in output and "captioner (" not in output
    again = check_tables(tmp_path / "again", ["again"])
    first = {(r["id"], r["sample"], r["mode"]): r["caption"] for r in items if r["reasoner"] == "trained"}
    assert {(r["id"], r["sample"], r["mode"]): r["caption"] for r in again if r["reasoner"] == "again"} == first


# An evaluation of its own (~25 s): the default set reads every row of the VLMEvalKit layout in
# tests/test_data_layouts.py, and evaluates the MathVista layout through the same path above.
@pytest.mark.slow
def test_a_benchmark_in_the_vlmeval_layout(data, tmp_path, run_launch):
    reasoners = {"trained": data[1].reasoner}
    # Another sampling seed than the vLLM test's below: its captions must not be found cached.
    evaluate(run_launch, data, data[2].vlmeval, tmp_path / "vlmeval", reasoners, "seed=1")
    check_tables(tmp_path / "vlmeval", list(reasoners))


@pytest.mark.slow  # vLLM engines take a minute to start; the default set runs the same path on transformers
def test_a_benchmark_on_vllm_engines(data, tmp_path, run_launch):
    output = evaluate(
        run_launch,
        data,
        data[2].vlmeval,
        tmp_path / "vllm",
        {"reasoner": data[1].reasoner},
        "rollout.engine=vllm",
        "serve.engine=vllm",
    )
    assert f"captioner outputs: 0 of {2 * ITEMS} found" in output
    check_tables(tmp_path / "vllm", ["reasoner"])
