"""The bundled models' lessons for the inference modes (task/direct_answers.py,
task/inference_examples.py): what each reply says, and that the graders read it as meant."""

import random

import pytest

from serve.grading import grade
from task.direct_answers import DirectAnswer, random_direct_answer
from task.inference_examples import (
    InferenceExample,
    garbled_tentative,
    inference_check_example,
    miscounted_tentative,
    random_inference_example,
)
from task.scenes import CountQuestion, SceneObject, describe, random_scene
from vlm.boxed import boxed_parts
from wire.scoring import multiple_choice_text

SCENE = (SceneObject(0, "red", "circle"), SceneObject(1, "blue", "square"), SceneObject(3, "red", "triangle"))
RED = CountQuestion(colour="red")


def test_the_captioners_direct_answer_counts_every_object_it_sees():
    answer = DirectAnswer(SCENE, RED, RED.text)
    assert answer.reply == "red circle: 1. blue square: 1. red triangle: 2. \\boxed{2}"
    assert grade(answer.reply, answer.answer).score == 1.0


def test_a_direct_answer_to_listed_options_is_graded_as_the_option_it_counts():
    rng = random.Random(0)
    for _ in range(50):
        answer = random_direct_answer(rng, random_scene(rng))
        # With options listed the gold is the option's text; the boxed count names that option.
        assert grade(answer.reply, answer.answer, question=answer.text).score == 1.0


@pytest.mark.parametrize(
    ("caption", "tentative", "reply"),
    [
        # The caption names two red objects: the reply counts them, whatever the tentative says.
        (describe(SCENE), "\\boxed{5}", "red circle: 1. blue square: 1. red triangle: 2. \\boxed{2}"),
        # A partial caption is still followed: the reasoner cannot know what it left out.
        (describe(SCENE[:2]), "\\boxed{2}", "red circle: 1. blue square: 1. \\boxed{1}"),
        # Nothing to count: the tentative answer's boxed value, else cannot tell.
        ("", "red circle: 1. \\boxed{3}", "\\boxed{3}"),
        ("top left: a red", "\\boxed{3}", "\\boxed{3}"),
        ("", "I cannot see it.", "\\boxed{cannot tell}"),
    ],
)
def test_the_two_stage_reply_follows_the_caption_and_falls_back_on_the_tentative_answer(caption, tentative, reply):
    example = InferenceExample(caption, RED, (), tentative)
    assert example.reply == reply
    assert "A first answer, which may be wrong: " in example.messages()[0]["content"]


def test_a_garbled_tentative_answer_gives_no_value_and_never_moves_the_captions_count():
    rng = random.Random(2)
    for _ in range(50):
        garbled = garbled_tentative(rng, SCENE)
        assert boxed_parts(garbled) == []
        # Beside a caption the reply counts the caption; with none, the reasoner cannot tell.
        assert InferenceExample(describe(SCENE), RED, (), garbled).reply.endswith("\\boxed{2}")
        assert InferenceExample("", RED, (), garbled).reply == "\\boxed{cannot tell}"


def test_a_miscounted_tentative_answer_walks_the_same_objects_and_never_moves_the_captions_count():
    rng = random.Random(3)
    for _ in range(50):
        miscounted = miscounted_tentative(rng, SCENE, RED)
        # The scene's objects in order, each with a count, the last one boxed.
        assert [step.split(":")[0] for step in miscounted.split(". ")[:3]] == [
            "red circle",
            "blue square",
            "red triangle",
        ]
        assert boxed_parts(miscounted) == [miscounted.split(": ")[-1].split(".")[0]]
        assert (
            InferenceExample(describe(SCENE), RED, (), miscounted).reply
            == "red circle: 1. blue square: 1. red triangle: 2. \\boxed{2}"
        )


def test_with_options_listed_the_reply_boxes_the_count_which_grades_as_its_option():
    example = InferenceExample(describe(SCENE), RED, ("0", "3", "2", "7"))
    assert example.asked == multiple_choice_text(RED.text, "ABCD", ("0", "3", "2", "7"))
    assert example.reply == "red circle: 1. blue square: 1. red triangle: 2. \\boxed{2}"
    # The benchmark's gold is the letter: the boxed count is the text of option C.
    assert grade(example.reply, "C", question=example.asked).score == 1.0
    assert grade(example.reply, "D", question=example.asked).score == 0.0
    # A tentative count that no option shows is still what the reply boxes; it grades as no option.
    fallback = InferenceExample("", RED, ("0", "3", "2", "7"), "\\boxed{5}")
    assert fallback.reply == "\\boxed{5}"
    assert all(grade(fallback.reply, letter, question=fallback.asked).score == 0.0 for letter in "ABCD")


def test_random_lessons_box_what_they_are_graded_on():
    rng = random.Random(1)
    for two_stage in (False, True):
        for _ in range(100):
            example = random_inference_example(rng, random_scene(rng), two_stage)
            assert (example.tentative is not None) == two_stage
            assert example.reply.endswith(f"\\boxed{{{example.answer}}}")
    checks = [inference_check_example(rng, random_scene(rng)) for _ in range(200)]
    # Held-out checks: every one has an answer (a complete caption, or the captioner's right one).
    assert all(check.answer != "cannot tell" for check in checks)


def test_the_captioner_describes_for_listed_questions_as_often_as_it_answers_them():
    """Caption prompts list options as often as direct ones, each listing the question's right count."""
    from task.direct_answers import caption_question

    rng = random.Random(1)
    listed = 0
    for _ in range(400):
        scene = random_scene(rng)
        text = caption_question(rng, scene)
        if "\n(A) " in text:
            listed += 1
            asked = text.split("\n", 1)[0]
            count = next(str(q.count(scene)) for q in _count_questions() if q.text == asked)
            assert f") {count}\n" in text
    # Half listed: 200 of 400, a standard deviation of 10.
    assert 160 <= listed <= 240


def _count_questions() -> list[CountQuestion]:
    from task.scenes import COLOURS, SHAPES

    return [CountQuestion(colour=c, shape=s) for c in (None, *COLOURS) for s in (None, *SHAPES)]


def test_the_two_stage_prompt_ends_as_the_caption_only_prompt_does():
    """The tentative answer comes before the description: the reply walks the caption, not the hint."""
    from vlm.reasoner_prompt import reasoner_messages, two_stage_messages

    caption, tentative = describe(SCENE), "red circle: 1. \\boxed{1}"
    two_stage = two_stage_messages(caption, RED.text, tentative)[0]["content"]
    caption_only = reasoner_messages(caption, RED.text)[0]["content"]
    tail = caption_only.split("\n", 1)[1]
    assert two_stage.endswith(tail) and "\\boxed{1}" in two_stage.removesuffix(tail)


@pytest.mark.parametrize(
    ("tentative", "hint"),
    [
        # Only the last boxed value is handed on: no steps for the reasoner to copy counts from.
        ("red circle: 1. blue square: 1. red triangle: 3. \\boxed{3}", "\\boxed{3}"),
        ("\\boxed{1} then \\boxed{2}", "\\boxed{2}"),
        # Nothing boxed (garbled, an open box, prose): nothing handed on.
        ("red circle: 1. \\boxed{1", ""),
        ("I cannot see it.", ""),
        ("", ""),
    ],
)
def test_the_two_stage_prompt_hands_on_only_the_tentative_answers_boxed_value(tentative, hint):
    from vlm.reasoner_prompt import two_stage_messages

    question_line, hint_line, *_ = two_stage_messages(describe(SCENE), RED.text, tentative)[0]["content"].split("\n")
    assert question_line == f"Question: {RED.text}"
    assert hint_line == f"A first answer, which may be wrong: {hint}"
