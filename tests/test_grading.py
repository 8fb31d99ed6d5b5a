"""Reward grading (serve/grading.py) and its time bounds (serve/deadline.py,
serve/expression_cost.py)."""

import threading
import time

import pytest

from serve.deadline import call_with_deadline
from serve.grading import (
    MATH_TIMEOUT_S,
    MAX_NESTING,
    Grade,
    caption_grade,
    caption_reward,
    extract_final_answer,
    grade,
    grade_answer,
    nesting_depth,
)

# ---------------------------------------------------------------- extract_final_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The LAST box wins, nested braces kept whole.
        ("first \\boxed{1}, then \\boxed{\\frac{1}{\\sqrt{2}}}.", "\\frac{1}{\\sqrt{2}}"),
        # \{ \} are literal braces, not grouping.
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
        ("so \\boxed 7 it is", "7"),
        # An unclosed box is no answer; the phrase form is the fallback.
        ("\\boxed{3", None),
        ("\\boxed{3 ... so the answer is 4.", "4"),
        ("The answer is $\\frac{1}{2}$.", "\\frac{1}{2}"),
        ("Answer: B", "B"),
        ("**Answer:** 12", "12"),
        ("no marker here", None),
        ("", None),
    ],
)
def test_extract_final_answer(text, expected):
    assert extract_final_answer(text) == expected


# ---------------------------------------------------------------- maths


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("\\boxed{\\frac{1}{2}}", "0.5"),  # nested braces vs decimal
        ("3.0", "3"),
        ("\\boxed{3}", "3"),
        ("3", "\\boxed{3}"),
        ("The answer is $\\frac{1}{2}$.", "0.5"),
        ("so \\boxed{12 apples}", "12"),
        ("\\boxed{x+1}", "1+x"),
    ],
)
def test_math_equivalent(prediction, gold):
    assert grade_answer(prediction, gold) == 1.0


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [("\\boxed{4}", "3"), ("30", "3"), ("\\boxed{\\frac{1}{3}}", "0.5"), ("unknown", "3")],
)
def test_math_different(prediction, gold):
    assert grade_answer(prediction, gold) == 0.0


def test_long_prose_without_marker_is_no_answer():
    # A number somewhere in 400 characters of prose is not a committed final answer.
    prose = "There are 3 red circles. " + "The caption mentions shapes. " * 14
    assert grade_answer(prose, "3") == 0.0


# ---------------------------------------------------------------- option letters


@pytest.mark.parametrize(
    "prediction",
    [
        "B",
        "(B)",
        "b.",
        "B.",
        "B) two circles",
        "\\boxed{B}",
        "\\boxed{\\text{(B)}}",
        "The answer is B",
        "The answer is B because the caption says so.",
    ],
)
def test_option_letter_correct(prediction):
    assert grade_answer(prediction, "B") == 1.0


@pytest.mark.parametrize("gold", ["(B)", "B.", "b", "\\boxed{B}"])
def test_option_letter_gold_forms(gold):
    assert grade_answer("B", gold) == 1.0


@pytest.mark.parametrize("prediction", ["The answer is C", "C", "(c)", "cannot tell", "Cannot tell", "unknown", ""])
def test_option_letter_wrong(prediction):
    assert grade_answer(prediction, "B") == 0.0


LISTED = "How many circles are there?\n(A) 1\n(B) 2\n(C) 3\n(D) 4"


@pytest.mark.parametrize(
    ("prediction", "question", "expected"),
    [
        # "I" is none of this question's options: the pronoun, not a choice.
        ("I think it is B", LISTED, 1.0),
        # Without listed options every letter A-J may be one, but "I" before a word is the pronoun.
        ("I think it is B", "How many circles are there?", 1.0),
        ("I or B", "How many circles are there?", 0.0),  # "I" chosen beside B: a hedge
        ("B and C", LISTED, 0.0),  # a hedge is not an answer
        ("(A) or (B)", LISTED, 0.0),
        ("E", LISTED, 0.0),  # outside the options
        ("\\boxed{B}", LISTED, 1.0),
    ],
)
def test_an_option_letter_is_the_one_option_chosen_among_those_listed(prediction, question, expected):
    assert grade_answer(prediction, "B", question=question) == expected


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [("\\boxed{3}", 0.0), ("\\boxed{2} and \\boxed{3}", 1.0), ("\\boxed{2, 3}", 1.0), ("\\boxed{2}", 0.0)],
)
def test_a_gold_answer_in_several_boxes_is_graded_whole(prediction, expected):
    assert grade_answer(prediction, "x = \\boxed{2} and y = \\boxed{3}") == expected


# ---------------------------------------------------------------- text answers


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("Red.", "red", 1.0),
        ("'red'", "Red", 1.0),
        ("  dark   red ", "Dark red", 1.0),
        ("blue", "red", 0.0),
        ("cannot tell", "cannot tell", 1.0),
        ("Unknown", "unknown", 1.0),
        ("der", "red", 0.0),  # would be equal if "red" were parsed as the product r*e*d
    ],
)
def test_text_exact_match(prediction, gold, expected):
    assert grade_answer(prediction, gold) == expected


# ---------------------------------------------------------------- garbage and time bounds


@pytest.mark.parametrize(
    "prediction",
    ["", "}}}{{", "\\boxed{", "$$", "x" * 5000, "".join(chr(33 + i * 7 % 90) for i in range(5000))],
)
def test_garbage_is_zero_and_fast(prediction):
    start = time.monotonic()
    assert grade_answer(prediction, "3") == 0.0
    assert time.monotonic() - start < 2.0


def test_non_string_is_zero():
    assert grade_answer(None, "3") == 0.0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("\\boxed{9^{9^{9}}}", "3"),  # a 1.2-billion-bit integer in one C call
        ("\\boxed{(x+y+z)^{200}}", "3"),  # 20301 terms once expanded
        ("\\boxed{8!99\\log6+e}", "\\frac{1}{2}"),  # logcombine builds 6^3991680
        ("\\boxed{993!*\\cos4}", "\\sqrt{2}"),  # primality tests on an 8500-bit number
    ],
)
def test_explosive_answers_are_refused_quickly(prediction, gold):
    start = time.monotonic()
    assert grade_answer(prediction, gold, timeout_s=1.0) == 0.0
    assert time.monotonic() - start < 2.0


def _spin() -> float:
    """A pure-Python endless loop: the deadline can interrupt bytecode (not one long C call)."""
    while True:
        pass


def test_deadline_interrupts_python_loop_and_leaves_nothing_behind():
    start = time.monotonic()
    assert call_with_deadline(_spin, 0.2, "late") == "late"
    assert time.monotonic() - start < 1.5
    # No stray exception may surface after the call returned.
    deadline = time.monotonic() + 0.4
    while time.monotonic() < deadline:
        pass
    assert call_with_deadline(lambda: 7, 0.2, "late") == 7


def test_grading_off_the_main_thread():
    # math-verify's SIGALRM timeouts raise off the main thread; ours must not.
    results: list[float] = []
    errors: list[BaseException] = []

    def grade():
        try:
            results.append(grade_answer("\\boxed{\\frac{1}{2}}", "0.5"))
            results.append(grade_answer("\\boxed{8!99\\log6+e}", "\\frac{1}{2}", timeout_s=0.5))
            results.append(call_with_deadline(_spin, 0.2, -1.0))
        except BaseException as exc:  # noqa: BLE001 - report anything to the main thread
            errors.append(exc)

    worker = threading.Thread(target=grade)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive() and not errors
    assert results == [1.0, 0.0, -1.0]


# ---------------------------------------------------------------- caption_reward


def test_caption_reward_mean():
    # Correct, correct, wrong, wrong -> 2/4 = 0.5.
    assert caption_reward(["\\boxed{3}", "3.0", "4", "no idea"], "3") == 0.5


def test_caption_reward_empty():
    with pytest.raises(ValueError):
        caption_reward([], "3")


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("\\boxed{" + "{" * 40 + "1" + "}" * 40 + "}", "brackets nested 40 deep"),
        ("\\boxed{" + "\\frac{" * 20 + "1" + "}{2}" * 20 + "}", "brackets nested 20 deep"),
        ("\\boxed{9^{9^{9}}}", "bits (limit 4096)"),
    ],
)
def test_an_answer_too_costly_to_grade_is_refused_at_once_and_says_why(answer, reason):
    # Before the nesting bound each of the first two ran into the whole grading deadline.
    started = time.perf_counter()
    result = grade(answer, "2")
    assert time.perf_counter() - started < 0.5 * MATH_TIMEOUT_S
    assert result.score == 0.0 and reason in result.refused


def test_answers_nested_as_deep_as_real_ones_are_still_graded():
    assert nesting_depth("\\left(\\frac{1}{2}\\right)^{2}") == 2  # ( then {1} inside it
    assert grade("\\boxed{\\left(\\frac{1}{2}\\right)^{2}}", "\\frac{1}{4}") == Grade(1.0)
    assert nesting_depth(")(" + "(" * (MAX_NESTING - 1)) == MAX_NESTING  # a stray closer does not go below 0


def test_a_caption_counts_its_refused_answers():
    costly = "\\boxed{" + "(" * 30 + "2" + ")" * 30 + "}"
    assert caption_grade(["\\boxed{2}", costly, "\\boxed{3}"], "2") == (1 / 3, 1)
