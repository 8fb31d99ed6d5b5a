"""Users' data layouts: ViRL39K's two parquet layouts, MathVista's JSON, VLMEvalKit's TSV, the
preparation a run makes of them, and `launch.py check-data`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from driver.cli import main as launch_main
from records.benchmarks import BenchmarkItem, read_benchmark
from records.prepare import RecordFilter, prepare_benchmark, prepare_records, read_data_file
from records.vqa import VQARecord, read_records, write_records
from task.layouts import EXCLUDED_SOURCE, question_category, write_layouts
from wire.scoring import MAX_GOLD_ANSWER_CHARS

QUESTIONS = [
    ("How many red circles are there?", "2"),
    ("How many objects are there?", "3"),
    ("How many triangles are there?", "1"),
    ("How many blue objects are there?", "4"),
]
COUNT = 8
LIMIT = 36_000_000


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """8 records with images of distinct colours, in our JSONL layout."""
    folder = tmp_path_factory.mktemp("source")
    (folder / "images").mkdir()
    records = []
    for i in range(COUNT):
        Image.new("RGB", (56, 56), (30 * i, 0, 0)).save(folder / "images" / f"{i}.png")
        question, answer = QUESTIONS[i % len(QUESTIONS)]
        records.append(VQARecord(f"r{i}", f"images/{i}.png", question, answer))
    write_records(folder / "records.jsonl", records)
    return folder / "records.jsonl"


@pytest.fixture(scope="module")
def layouts(source, tmp_path_factory):
    return write_layouts(source, tmp_path_factory.mktemp("layouts"), count=COUNT)


def pixels(path: str) -> bytes:
    return Image.open(path).convert("RGB").tobytes()


def test_question_categories_follow_what_is_counted():
    assert [question_category(q) for q, _ in QUESTIONS] == ["colour and shape", "total", "shape", "colour"]


@pytest.mark.parametrize("layout", ["virl39k_release", "virl39k_mirrored"])
def test_both_virl39k_layouts_read_as_the_records_they_were_made_from(source, layouts, layout, tmp_path):
    read = read_data_file(getattr(layouts, layout), tmp_path / "images")
    originals = read_records(source)
    # The reader refuses what the rows say (several images, no answer); the image checks come later.
    assert [p.record_id for p in read.problems] == ["bad-several-images", "bad-empty-answer"]
    image_rows = (
        ["bad-missing-image", "bad-unreadable-image"] if layout == "virl39k_release" else ["bad-unreadable-image"]
    )
    assert [r.id for r in read.records] == [r.id for r in originals] + image_rows
    for got, original in zip(read.records, originals):
        assert got.question == original.question  # the <image> placeholder gone
        assert got.answer == f"\\boxed{{{original.answer}}}"
        assert got.category == question_category(original.question)
        root = getattr(layouts, layout).parent
        assert pixels(str(root / got.image)) == pixels(str(source.parent / original.image))
    sources = [r.source for r in read.records[:COUNT]]
    assert sources == (
        [EXCLUDED_SOURCE] * 2 + ["bundled-shapes"] * (COUNT - 2) if layout == "virl39k_release" else [""] * COUNT
    )


def test_release_rows_that_cannot_be_used_are_refused_with_reasons(layouts, tmp_path):
    prepared = prepare_records(layouts.virl39k_release, tmp_path, RecordFilter(), LIMIT)
    reasons = {p.record_id: p.reason for p in prepared.problems}
    assert reasons["bad-several-images"].startswith("several images: 2")
    assert reasons["bad-missing-image"] == f"missing image: {layouts.virl39k_release.parent / 'images' / 'absent.png'}"
    assert reasons["bad-unreadable-image"].startswith("unreadable image: ")
    assert reasons["bad-empty-answer"].startswith("empty answer")
    # Rows 1-8 are the good ones; the four bad rows follow them.
    assert [p.where for p in prepared.problems] == ["row 9", "row 10", "row 11", "row 12"]
    assert prepared.kept == COUNT and prepared.filtered_out == 0


def test_preparation_filters_by_source_writes_absolute_paths_and_is_reused(layouts, tmp_path):
    prepared = prepare_records(
        layouts.virl39k_release, tmp_path, RecordFilter(exclude_sources=(EXCLUDED_SOURCE,)), LIMIT
    )
    records = read_records(prepared.records_file)
    assert prepared.kept == len(records) == COUNT - 2 and prepared.filtered_out == 2
    assert all(r.source != EXCLUDED_SOURCE and Path(r.image).is_absolute() and Path(r.image).is_file() for r in records)
    written = prepared.records_file.stat().st_mtime_ns
    again = prepare_records(layouts.virl39k_release, tmp_path, RecordFilter(exclude_sources=(EXCLUDED_SOURCE,)), LIMIT)
    assert again == prepared and prepared.records_file.stat().st_mtime_ns == written
    # Other settings are another preparation: a category filter keeps that category alone.
    shapes = prepare_records(layouts.virl39k_release, tmp_path, RecordFilter(categories=("shape",)), LIMIT)
    assert shapes.records_file != prepared.records_file
    assert {r.category for r in read_records(shapes.records_file)} == {"shape"} and shapes.kept == COUNT // len(
        QUESTIONS
    )


def test_mirrored_images_are_written_out_once_by_content(layouts, tmp_path):
    prepared = prepare_records(layouts.virl39k_mirrored, tmp_path, RecordFilter(), LIMIT)
    records = read_records(prepared.records_file)
    assert prepared.kept == COUNT and [p.record_id for p in prepared.problems] == [
        "bad-several-images",
        "bad-unreadable-image",
        "bad-empty-answer",
    ]
    # 8 distinct images, plus the corrupt one; the empty-answer row reuses r0's image file.
    images = list((prepared.records_file.parent / "images").iterdir())
    assert len(images) == COUNT + 1 and len({r.image for r in records}) == COUNT


def test_a_filter_on_a_field_the_file_lacks_is_an_error(layouts, tmp_path):
    with pytest.raises(
        ValueError, match=r"task\.exclude_sources is set, but no row of .*mirror\.parquet names its source"
    ):
        prepare_records(layouts.virl39k_mirrored, tmp_path, RecordFilter(exclude_sources=(EXCLUDED_SOURCE,)), LIMIT)


def test_a_parquet_file_in_neither_layout_names_what_is_missing(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"qid": "a", "question": "q"}]), tmp_path / "odd.parquet")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['answer', 'image'\]"):
        read_data_file(tmp_path / "odd.parquet")


def test_an_image_larger_than_the_limit_is_refused(tmp_path):
    Image.new("RGB", (300, 200)).save(tmp_path / "big.png")
    write_records(tmp_path / "data.jsonl", [VQARecord("big", "big.png", "q?", "1")])
    prepared = prepare_records(tmp_path / "data.jsonl", tmp_path / "cache", RecordFilter(), max_pixels=300 * 200 - 1)
    assert prepared.kept == 0
    assert prepared.problems[0].reason.startswith(f"image too large: {tmp_path / 'big.png'} is 300x200 = 60000 pixels")


def test_mathvista_items_keep_the_gold_option_letter(source, layouts):
    read = read_benchmark(layouts.mathvista)
    originals = read_records(source)
    annotations = json.loads(layouts.mathvista.read_text())
    assert not read.problems and len(read.items) == COUNT
    for item, original, row in zip(read.items, originals, annotations.values()):
        if row["choices"]:
            assert item.multiple_choice and item.choices[ord(item.answer) - ord("A")] == original.answer
            assert (
                item.prompt().endswith("Answer with the option's letter.")
                and f"({item.answer}) {original.answer}" in item.prompt()
            )
        else:
            assert (item.answer, item.answer_type, item.prompt()) == (original.answer, "integer", original.question)
        assert item.category == question_category(original.question)


def test_vlmeval_tsv_images_shared_by_index_and_decoded(source, layouts, tmp_path):
    read = read_benchmark(layouts.vlmeval, tmp_path)
    originals = read_records(source)
    assert not read.problems and len(read.items) == COUNT
    # Row 1 names row 0's image by its index: both read the same file.
    assert read.items[1].image == read.items[0].image
    assert pixels(read.items[0].image) == pixels(str(source.parent / originals[0].image))
    assert all(
        i.letters == "ABCD" and i.choices[ord(i.answer) - ord("A")] == o.answer
        for i, o in zip(read.items[2:], originals[2:])
    )


def test_benchmark_rows_that_cannot_be_graded_are_refused(tmp_path):
    items = {
        "1": {"question": "q", "image": "a.png", "answer": "7", "choices": ["1", "2"], "question_type": "multi_choice"},
        "2": {"question": "q", "image": "a.png", "answer": "1", "question_type": "multi_choice"},
        "3": {"question": "q", "image": "a.png", "answer": "1", "answer_type": "fraction"},
        "4": {"question": "q", "image": "a.png", "answer": "2", "choices": ["1", "2"]},
    }
    (tmp_path / "bench.json").write_text(json.dumps(items))
    read = read_benchmark(tmp_path / "bench.json")
    assert [str(p) for p in read.problems] == [
        "item 1 (1): answer '7' is none of the options AB nor the text of exactly one choice",
        "item 2 (2): question_type multi_choice but no choices",
        "item 3 (3): answer_type 'fraction' is none of ('text', 'integer', 'float', 'list')",
    ]
    assert read.items == [BenchmarkItem("4", "a.png", "q", "B", ("1", "2"))]


def test_a_benchmark_with_an_unusable_item_is_refused_whole(tmp_path):
    (tmp_path / "bench.json").write_text(json.dumps({"1": {"question": "q", "image": "absent.png", "answer": "1"}}))
    with pytest.raises(ValueError, match=r"1 unusable items .*\n  item 1 \(1\): missing image: .*absent\.png"):
        prepare_benchmark(tmp_path / "bench.json", tmp_path / "cache", LIMIT)


def test_check_data_lists_unusable_rows_and_exits_1(layouts, capsys):
    code = launch_main(["check-data", str(layouts.virl39k_release), f"task.exclude_sources=[{EXCLUDED_SOURCE}]"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0] == (
        f"{layouts.virl39k_release}: {COUNT + 4} rows; {COUNT - 2} usable, 2 left out by the filter "
        "(task.exclude_sources, task.categories), 4 unusable"
    )
    assert [line.split(":")[0] for line in out[1:5]] == [
        "  row 9 (bad-several-images)",
        "  row 10 (bad-missing-image)",
        "  row 11 (bad-unreadable-image)",
        "  row 12 (bad-empty-answer)",
    ]
    assert out[5] == "unusable by reason: 1 several images, 1 missing image, 1 unreadable image, 1 empty answer"


def test_check_data_finds_a_truncated_image_that_only_decoding_shows(tmp_path, capsys):
    Image.new("RGB", (64, 64), (9, 9, 9)).save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    write_records(tmp_path / "data.jsonl", [VQARecord("cut", "cut.png", "q?", "1")])
    assert launch_main(["check-data", str(tmp_path / "data.jsonl")]) == 1
    assert "line 1 (cut): unreadable image: " in capsys.readouterr().out


def test_a_gold_answer_longer_than_the_grader_reads_is_an_unusable_row(tmp_path, capsys):
    # Parsing a 20,000-character gold ran the grading deadline out on every answer graded against
    # it: the row is dropped when the data is prepared, and check-data names its length and the limit.
    Image.new("RGB", (56, 56)).save(tmp_path / "a.png")
    longest = "1" * MAX_GOLD_ANSWER_CHARS
    write_records(
        tmp_path / "data.jsonl",
        [VQARecord("ok", "a.png", "q?", longest), VQARecord("long", "a.png", "q?", longest + "1")],
    )
    prepared = prepare_records(tmp_path / "data.jsonl", tmp_path / "cache", RecordFilter(), LIMIT)
    assert prepared.kept == 1 and [p.record_id for p in prepared.problems] == ["long"]
    assert launch_main(["check-data", str(tmp_path / "data.jsonl")]) == 1
    out = capsys.readouterr().out
    assert (
        f"line 2 (long): gold answer too long (1001 characters; the grader reads at most {MAX_GOLD_ANSWER_CHARS})"
        in out
    )
    assert "unusable by reason: 1 gold answer too long" in out
    # A benchmark's item alike: its gold could never be graded, so the benchmark is refused.
    (tmp_path / "bench.json").write_text(
        json.dumps({"1": {"question": "q", "image": "a.png", "answer": longest + "1"}})
    )
    assert [p.reason for p in read_benchmark(tmp_path / "bench.json").problems] == [prepared.problems[0].reason]


@pytest.mark.parametrize("layout", ["mathvista", "vlmeval"])
def test_check_data_passes_a_clean_benchmark(layouts, layout, capsys):
    assert launch_main(["check-data", str(getattr(layouts, layout))]) == 0
    assert f"{COUNT} rows; {COUNT} usable" in capsys.readouterr().out


def test_check_data_names_a_missing_file_and_an_unknown_layout(tmp_path, capsys):
    assert launch_main(["check-data", str(tmp_path / "absent.jsonl")]) == 2
    (tmp_path / "data.csv").write_text("x")
    assert launch_main(["check-data", str(tmp_path / "data.csv")]) == 2
    err = capsys.readouterr().err
    assert f"data error: no data file at {tmp_path / 'absent.jsonl'}" in err and "unsupported data file" in err


def files_run(tmp_path) -> list[str]:
    """A run on tmp_path/data.jsonl with stand-in checkpoints: it must stop before they are read."""
    return [
        "task.kind=files",
        f"task.train_file={tmp_path / 'data.jsonl'}",
        f"task.cache_dir={tmp_path / 'cache'}",
        "models.captioner=/x",
        "models.reasoner=/y",
        "eval.at_end=false",
        f"run_dir={tmp_path / 'run'}",
    ]


def test_a_training_file_with_no_usable_row_stops_the_run_before_ray(tmp_path, capsys):
    write_records(tmp_path / "data.jsonl", [VQARecord("a", "absent.png", "q?", "1")])
    code = launch_main(files_run(tmp_path))
    assert code == 2
    assert "no usable row (0 left out by the filter, 1 unusable)" in capsys.readouterr().err


def test_a_modified_data_file_is_prepared_again(tmp_path):
    Image.new("RGB", (56, 56)).save(tmp_path / "a.png")
    write_records(tmp_path / "data.jsonl", [VQARecord("a", "a.png", "q?", "1")])
    first = prepare_records(tmp_path / "data.jsonl", tmp_path / "cache", RecordFilter(), LIMIT)
    write_records(tmp_path / "data.jsonl", [VQARecord("a", "a.png", "q?", "1"), VQARecord("b", "a.png", "q2?", "2")])
    os.utime(tmp_path / "data.jsonl", ns=(1, first.records_file.stat().st_mtime_ns + 10**9))
    second = prepare_records(tmp_path / "data.jsonl", tmp_path / "cache", RecordFilter(), LIMIT)
    assert (first.kept, second.kept) == (1, 2) and first.records_file != second.records_file


def test_the_mcq_reward_on_records_without_questions_stops_before_ray(tmp_path, capsys):
    Image.new("RGB", (56, 56)).save(tmp_path / "a.png")
    write_records(tmp_path / "data.jsonl", [VQARecord("a", "a.png", "q?", "1")])
    code = launch_main([*files_run(tmp_path), "reward.kind=mcq"])
    assert code == 2
    assert (
        "reward.kind=mcq asks each image's multiple-choice questions, but 1 of the 1 training records have none"
        in capsys.readouterr().err
    )
