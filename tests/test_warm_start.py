"""The warm start's pieces: caption parsing, subsets, the reasoner's targets, packing, schedule."""

import random

import pytest
import torch

from task.captioner_warm_start import (
    CaptionQuality,
    QualityBar,
    _cell_targets,
    keep_prefix,
)
from serve.judge import parse_verdict
from task.judge_examples import CaptionJudgeExample, JudgeExample, random_judge_example
from task.reasoner_examples import CANNOT_TELL, ReasonerExample, random_example
from task.scenes import (
    CountQuestion,
    SceneObject,
    describe,
    parse_caption,
    random_scene,
)
from task.sft import (
    IGNORE_INDEX,
    SFTSettings,
    _lr_factor,
    length_bucketed,
    pack_sequences,
    supervised_finetune,
)

RED_CIRCLE = SceneObject(0, "red", "circle")
BLUE_SQUARE = SceneObject(1, "blue", "square")
RED_TRIANGLE = SceneObject(3, "red", "triangle")
SCENE = (RED_CIRCLE, BLUE_SQUARE, RED_TRIANGLE)


def test_parse_caption_inverts_describe():
    rng = random.Random(0)
    for _ in range(200):
        scene = random_scene(rng)
        assert parse_caption(describe(scene)) == scene


@pytest.mark.parametrize(
    "caption",
    ["top left: a red", "top left: a red circle. top left: a blue square.", "a red circle.", "top left: a pink circle."],
)
def test_parse_caption_rejects_what_is_not_a_faithful_format(caption):
    assert parse_caption(caption) is None


def test_keep_prefix_stops_at_random_after_each_object():
    rng = random.Random(1)
    kept = [keep_prefix(rng, SCENE, 0.5) for _ in range(4000)]
    assert all(k == list(SCENE[: len(k)]) for k in kept)
    # Stop after the 1st object w.p. 1/2, after the 2nd w.p. 1/4, never stop before the 3rd
    # (the last) otherwise: lengths 1, 2, 3 with probabilities 1/2, 1/4, 1/4.
    shares = [sum(len(k) == n for k in kept) / len(kept) for n in (1, 2, 3)]
    assert all(abs(share - want) < 0.03 for share, want in zip(shares, (0.5, 0.25, 0.25)))
    assert keep_prefix(rng, SCENE, 1.0) == list(SCENE) and keep_prefix(rng, SCENE, 0.0) == [RED_CIRCLE]


def test_reasoner_reply_counts_as_it_copies():
    red = CountQuestion(colour="red")
    full = ReasonerExample(describe(SCENE), red)
    assert full.reply == "red circle: 1. blue square: 1. red triangle: 2. \\boxed{2}"
    assert full.answer == "2"
    # A caption that left the red triangle out makes a faithful reader answer 1: wrong.
    partial = ReasonerExample(describe(SCENE, [RED_CIRCLE, BLUE_SQUARE]), red)
    assert partial.answer == "1"
    assert ReasonerExample(describe(SCENE), CountQuestion(shape="square")).answer == "1"
    assert ReasonerExample(describe(SCENE), CountQuestion()).answer == "3"
    assert ReasonerExample(describe(SCENE), CountQuestion("green", "circle")).reply.endswith("\\boxed{0}")


def test_reasoner_cannot_tell_from_an_empty_or_cut_off_caption():
    for caption in ("", "top left: a red"):
        example = ReasonerExample(caption, CountQuestion(colour="red"))
        assert example.answer == CANNOT_TELL
        assert example.reply == f"\\boxed{{{CANNOT_TELL}}}"


def test_the_judge_copies_the_boxed_answer_then_scores_it_in_the_strict_format():
    red = CountQuestion(colour="red")
    right = JudgeExample(red.text, "2", ReasonerExample(describe(SCENE), red).reply)
    assert right.reply == "Answer: 2\nScore: 10" and parse_verdict(right.reply) == 1.0
    # Left the red triangle out: the response answers 1, the reference says 2.
    wrong = JudgeExample(red.text, "2", ReasonerExample(describe(SCENE, [RED_CIRCLE, BLUE_SQUARE]), red).reply)
    assert wrong.reply == "Answer: 1\nScore: 0" and parse_verdict(wrong.reply) == 0.0
    cut = JudgeExample(red.text, "2", "red circle: 1. blue")
    assert cut.reply == "Answer: none\nScore: 0"
    assert cut.messages()[1]["content"] == f"Question: {red.text}\nReference: 2\nResponse: red circle: 1. blue"


def test_the_caption_judge_walks_the_reference_losing_three_per_object_left_out():
    question = CountQuestion(colour="red").text
    # The blue square left out: 10, then 10 - 3 = 7, then still 7.
    missing_one = CaptionJudgeExample(question, SCENE, describe(SCENE, [RED_CIRCLE, RED_TRIANGLE]))
    assert missing_one.reply == "top left red circle: 10. top right blue square: 7. bottom right red triangle: 7.\nScore: 7"
    assert parse_verdict(missing_one.reply) == 0.7
    assert CaptionJudgeExample(question, SCENE, describe(SCENE)).score == 10
    # A wrong object in a cell names nothing there; a caption out of format names nothing at all.
    wrong_colour = describe(SCENE, [RED_CIRCLE, RED_TRIANGLE]).replace("red triangle", "blue triangle")
    assert CaptionJudgeExample(question, SCENE, wrong_colour).score == 10 - 3 - 3
    assert CaptionJudgeExample(question, SCENE, "top left: a red").score == 10 - 3 - 3 - 3
    # Four left out would be 10 - 12: the score stops at 0.
    four = (*SCENE, SceneObject(2, "green", "circle"))
    assert CaptionJudgeExample(question, four, "").score == 0
    assert CaptionJudgeExample(question, SCENE, "x").messages()[1]["content"] == (
        f"Question: {question}\nReference: {describe(SCENE)}\nResponse: x"
    )


def test_random_judge_examples_are_often_right_and_often_wrong():
    rng = random.Random(3)
    scenes = [random_scene(rng) for _ in range(500)]
    examples = [random_judge_example(rng, scene) for scene in scenes]
    right = sum(e.score == 10 for e in examples) / len(examples)
    # Half answer from complete captions (always right); the rest from partial, empty or cut ones.
    assert 0.5 < right < 0.9
    assert all(parse_verdict(e.reply) == e.score / 10 for e in examples)


def test_random_examples_mix_complete_partial_empty_and_cut_captions():
    rng = random.Random(2)
    scene = (RED_CIRCLE, BLUE_SQUARE, RED_TRIANGLE, SceneObject(2, "green", "circle"))
    captions = [random_example(rng, scene, 0.5).caption for _ in range(2000)]
    complete = sum(c == describe(scene) for c in captions) / len(captions)
    empty = sum(c == "" for c in captions) / len(captions)
    cut = sum(c != "" and parse_caption(c) is None for c in captions) / len(captions)
    # 40% complete on purpose, plus partial ones (40%) that kept all four: 0.4 * 1/16 = 0.025.
    assert abs(complete - 0.425) < 0.04
    # 10% empty on purpose, plus partial ones that kept none: 0.1 + 0.4 * 1/16 = 0.125.
    assert abs(empty - 0.125) < 0.025 and abs(cut - 0.1) < 0.025


def test_pack_sequences_aligns_targets_and_labels_only_them():
    batch = pack_sequences([[5, 6, 7], [8]], [[1], [2, 3]], pad_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7, 1, 0], [0, 0, 8, 2, 3]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 0], [0, 0, 1, 1, 1]]
    ignore = IGNORE_INDEX
    assert batch.labels.tolist() == [[ignore, ignore, ignore, 1, ignore], [ignore, ignore, ignore, 2, 3]]
    with pytest.raises(ValueError, match="as many prompts as targets"):
        pack_sequences([[1]], [], pad_id=0)


def test_lr_schedule_warms_up_then_decays_to_a_tenth():
    settings = SFTSettings(steps=120, lr=1.0, warmup_steps=20)
    assert _lr_factor(0, settings) == pytest.approx(1 / 20)
    assert _lr_factor(19, settings) == pytest.approx(1.0)
    assert _lr_factor(20, settings) == pytest.approx(1.0)
    # Halfway through the decay the cosine is at 0: 0.1 + 0.9 * 0.5.
    assert _lr_factor(70, settings) == pytest.approx(0.55)
    assert _lr_factor(120, settings) == pytest.approx(0.1)
    assert torch.isfinite(torch.tensor(_lr_factor(500, settings)))


def test_length_bucketed_batches_hold_every_drawn_example_once_in_similar_lengths():
    counter = iter(range(10_000))
    # Lengths cycle 0..7, so a pool of 4 batches of 4 holds two of each length.
    batches = length_bucketed(lambda: next(counter), lambda n: (n % 8,), batch_size=4, rng=random.Random(0), pool_batches=4)
    pool = [next(batches) for _ in range(4)]
    assert sorted(n for batch in pool for n in batch) == list(range(16))
    # Sorted, then cut: each batch spans two adjacent lengths (instead of up to all eight).
    assert sorted(sorted({n % 8 for n in batch}) for batch in pool) == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_supervised_finetune_stops_at_the_first_passed_check():
    weight = torch.nn.Parameter(torch.tensor(3.0))
    checks = []

    def good_enough() -> bool:
        checks.append(weight.item())
        return len(checks) == 2

    settings = SFTSettings(steps=100, lr=0.1, warmup_steps=1, check_every=5)
    taken = supervised_finetune([weight], lambda step: weight**2, settings, "test", good_enough)
    # Passed at the second check, after 2 x 5 steps, having moved towards the minimum at 0.
    assert taken == 10 and len(checks) == 2 and abs(checks[1]) < abs(checks[0]) < 3.0
    assert supervised_finetune([weight], lambda step: weight**2, settings, "test") == 100


def test_quality_bar_needs_both_precision_and_form():
    bar = QualityBar(scenes=(), min_precision=0.9)
    assert bar.passed_by(CaptionQuality(well_formed=0.96, precision=0.9, recall=0.4))
    assert not bar.passed_by(CaptionQuality(well_formed=0.96, precision=0.89, recall=1.0))
    assert not bar.passed_by(CaptionQuality(well_formed=0.9, precision=1.0, recall=1.0))


def test_cell_targets_name_each_cells_content_and_place():
    targets = _cell_targets([SCENE])
    # SCENE: red circle top left (0), blue square top right (1), red triangle bottom right (3).
    assert targets.occupied.tolist() == [1.0, 1.0, 0.0, 1.0]
    assert targets.colour.tolist() == [0, 2, -100, 0]  # red, blue, empty, red
    assert targets.shape.tolist() == [0, 1, -100, 2]  # circle, square, empty, triangle
    assert targets.row.tolist() == [0, 0, 1, 1] and targets.column.tolist() == [0, 1, 0, 1]
