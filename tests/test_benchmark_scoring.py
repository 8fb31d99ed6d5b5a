"""Benchmark grading (option letters, numbers, lists, text), the caption cache, and the tables."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from evaluation.benchmark import ItemResult
from evaluation.benchmark_report import accuracies, write_report
from evaluation.benchmark_scoring import grade_item
from evaluation.caption_cache import CaptionCache, image_digest, prompt_key
from records.benchmarks import BenchmarkItem
from records.vqa import VQARecord
from serve.options import chosen_option


@pytest.mark.parametrize(
    ("answer", "letters", "choices", "chosen"),
    [
        ("B", "ABCD", (), "B"),
        ("(b)", "ABCD", (), "B"),
        ("b.", "ABCD", (), "B"),
        ("(C) 12", "ABCD", (), "C"),
        ("It is B", "ABCD", (), "B"),
        # "I" before a word is the pronoun, even where ten options make I a letter; "I or B" hedges.
        ("I think it is B", "ABCD", (), "B"),
        ("I think it is B", "ABCDEFGHIJ", (), "B"),
        ("I or B", "ABCDEFGHIJ", (), None),
        ("B and C", "ABCD", (), None),
        ("E", "ABCD", (), None),  # outside the question's options
        ("Blue", "ABCD", (), None),  # the B of "Blue" is no letter on its own
        ("12", "ABCD", ("10", "12", "14", "16"), "B"),
        ("blue", "AB", ("Red", "Blue"), "B"),
    ],
)
def test_the_option_an_answer_chooses(answer, letters, choices, chosen):
    assert chosen_option(answer, letters, choices) == chosen


def item(
    answer: str, answer_type: str = "text", choices: tuple[str, ...] = (), precision: int | None = None
) -> BenchmarkItem:
    return BenchmarkItem("i", "a.png", "q?", answer, choices, answer_type, precision, "cat")


@pytest.mark.parametrize(
    ("gold", "response", "correct", "extracted"),
    [
        (item("C", choices=("1", "2", "3", "4")), "so the answer is \\boxed{C}", True, "C"),
        (item("C", choices=("1", "2", "3", "4")), "\\boxed{3}", True, "C"),  # the choice's text
        (item("C", choices=("1", "2", "3", "4")), "\\boxed{B or C}", False, None),  # a hedge
        (item("3", "integer"), "\\boxed{3}", True, "3"),
        (item("3", "integer"), "\\boxed{3.0}", True, "3.0"),
        (item("3", "integer"), "there are 3 apples", True, "there are 3 apples"),
        (item("3", "integer"), "\\boxed{4}", False, "4"),
        (item("3", "integer"), "\\boxed{\\frac{6}{2}}", True, "\\frac{6}{2}"),  # two numbers: math-verify decides
        # precision 2: within half a unit of the second decimal, 0.005.
        (item("1.45", "float", precision=2), "\\boxed{1.449}", True, "1.449"),
        (item("1.45", "float", precision=2), "\\boxed{1.46}", False, "1.46"),
        # no precision: the gold's own one decimal, so 0.05.
        (item("2.5", "float"), "\\boxed{2.54}", True, "2.54"),
        (item("2.5", "float"), "\\boxed{2.56}", False, "2.56"),
        (item("[1, 2, 3]", "list"), "\\boxed{[1, 2, 3]}", True, "[1, 2, 3]"),
        (item("[1, 2, 3]", "list"), "\\boxed{[1, 3, 2]}", False, "[1, 3, 2]"),
        (item("[1, 2, 3]", "list"), "\\boxed{[1, 2]}", False, "[1, 2]"),
        (item("triangle"), "Triangle.", True, "Triangle."),
        (item("triangle"), "\\boxed{square}", False, "square"),
        (item("3", "integer"), "x" * 400, False, None),  # a long reply with no marked answer has none
    ],
)
def test_grading_as_the_benchmarks_do(gold, response, correct, extracted):
    grade = grade_item(gold, response)
    assert (grade.correct, grade.extracted) == (correct, extracted)


def checkpoint(folder: Path) -> str:
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    return str(folder)


def test_caption_cache_is_keyed_by_captioner_prompt_and_seed(tmp_path):
    captioner = checkpoint(tmp_path / "captioner")
    (tmp_path / "a.png").write_bytes(b"image a")
    (tmp_path / "b.png").write_bytes(b"image b")
    record = VQARecord("1", "a.png", "How many?", "1")
    messages = [{"role": "user", "content": "How many?"}]
    image = image_digest(record, tmp_path)
    key = prompt_key("caption", messages, image)
    assert key != prompt_key("answer", messages, image)
    assert key != prompt_key("caption", messages, image_digest(VQARecord("1", "b.png", "How many?", "1"), tmp_path))
    assert key != prompt_key("caption", [{"role": "user", "content": "How few?"}], image)

    cache = CaptionCache(tmp_path / "cache", captioner, seed=7, sampling={"n": 2})
    cache.put({key: ["a red circle", "a circle"]})
    with cache.path.open("a") as out:
        out.write('{"key": "cut sh')  # a crash mid-line: that entry is just generated again
    assert CaptionCache(tmp_path / "cache", captioner, seed=7, sampling={"n": 2}).get(key) == [
        "a red circle",
        "a circle",
    ]
    assert CaptionCache(tmp_path / "cache", captioner, seed=8, sampling={"n": 2}).get(key) is None
    assert CaptionCache(tmp_path / "cache", captioner, seed=7, sampling={"n": 4}).get(key) is None
    # A retrained checkpoint at the same path is another captioner.
    (Path(captioner) / "model.safetensors").write_bytes(b"new weights")
    assert CaptionCache(tmp_path / "cache", captioner, seed=7, sampling={"n": 2}).get(key) is None


def result(
    item_id: str,
    category: str,
    sample: int,
    correct: bool,
    mode: str = "caption",
    reasoner: str = "r",
    response: str = "resp",
) -> ItemResult:
    return ItemResult(item_id, category, mode, reasoner, sample, "q", "1", "cap", "", response, None, correct)


RESULTS = [
    result("a", "X", 0, True),
    result("a", "X", 1, False),  # item a: 1/2
    result("b", "X", 0, True),
    result("b", "X", 1, True),  # item b: 2/2
    result("c", "Y", 0, False),
    result("c", "Y", 1, False),  # item c: 0/2
    result("a", "X", 0, True, "direct", "", "\\boxed{1}"),
    result("a", "X", 1, True, "direct", "", "Answer: 1\nScore: 10"),
]


def test_accuracy_is_the_mean_over_items_with_its_standard_error():
    rows = {(a.mode, a.category): a for a in accuracies(RESULTS)}
    every = rows[("caption", "all")]
    # Item shares 0.5, 1, 0: mean 0.5; their standard deviation is 0.5, over sqrt(3) items.
    assert (every.items, every.samples, every.accuracy) == (3, 2, 0.5)
    assert every.stderr == pytest.approx(0.5 / math.sqrt(3))
    assert rows[("caption", "X")].accuracy == 0.75 and rows[("caption", "X")].stderr == pytest.approx(
        math.sqrt(0.125) / math.sqrt(2)
    )
    assert rows[("caption", "Y")].accuracy == 0.0 and math.isnan(rows[("caption", "Y")].stderr)
    assert rows[("direct", "all")].accuracy == 1.0 and rows[("direct", "all")].items == 1
    # Of the two direct responses one boxes its answer and one carries a judge's Score line.
    assert (rows[("direct", "all")].boxed, rows[("direct", "all")].score_lines) == (0.5, 1)
    assert (every.boxed, every.score_lines) == (0.0, 0)


def test_report_files(tmp_path):
    facts = {"benchmark": "/data/bench.tsv", "captioner": "/ckpt/c", "reasoners": {"r": "/ckpt/r"}, "seed": 3}
    write_report(tmp_path, RESULTS, facts, "python launch.py eval data=/data/bench.tsv out=x")
    markdown = (tmp_path / "eval.md").read_text()
    assert "    python launch.py eval data=/data/bench.tsv out=x" in markdown and '"seed": 3' in markdown
    assert "| caption | r | 0.500 | 0.289 | 3 x 2 | 0.00 | 0 |" in markdown
    # The modes in the paper's order, whatever order the results came in.
    assert "| category | items | direct | caption (r) |" in markdown and "| X | 2 | 1.000 | 0.750 |" in markdown
    rows = list(csv.DictReader((tmp_path / "eval.csv").open()))
    assert [(r["mode"], r["category"]) for r in rows] == [
        ("direct", "all"),
        ("caption", "all"),
        ("direct", "X"),
        ("caption", "X"),
        ("caption", "Y"),
    ]
    assert {r["reasoner_checkpoint"] for r in rows if r["mode"] == "caption"} == {"/ckpt/r"}
    assert [json.loads(line)["correct"] for line in (tmp_path / "items.jsonl").read_text().splitlines()] == [
        r.correct for r in RESULTS
    ]
    assert (tmp_path / "eval.png").read_bytes()[:4] == b"\x89PNG"
