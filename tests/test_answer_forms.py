"""How a final answer is read and put in comparable form (serve/answer_forms.py, serve/grading.py),
and Math-Verify's own test cases graded by the reward's grader."""

import pytest

from serve.answer_forms import comparable, last_math_piece
from serve.grading import grade, grade_answer
from tests.math_verify_cases import all_cases, default_settled
from wire.scoring import MAX_GOLD_ANSWER_CHARS


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        # Several boxed parts against a gold written as one list.
        ("\\boxed{2}, \\boxed{3}, \\boxed{5}", "2, 3, 5", 1.0),
        ("\\boxed{(1, 2)} and \\boxed{(2, 1)}", "(1, 2), (2, 1)", 1.0),
        ("\\boxed{2} and \\boxed{7}", "2, 3", 0.0),
        # Against a single gold the last box still counts: boxing two values is no list.
        ("\\boxed{3} or \\boxed{5}", "5", 1.0),
        ("\\boxed{5} or \\boxed{3}", "5", 0.0),
    ],
)
def test_boxed_parts_against_a_list_gold(prediction, gold, expected):
    assert grade_answer(prediction, gold) == expected


def test_a_gold_boxed_in_parts_is_a_list_only_when_written_as_one():
    assert grade_answer("\\boxed{1, 2}", "\\boxed{1} papers and \\boxed{2} bins") == 1.0
    # Words and no "and" or comma between the parts: the gold's answer is its last part.
    assert grade_answer("\\boxed{1, 2}", "\\boxed{1} no no no \\boxed{2}") == 0.0
    assert grade_answer("\\boxed{2}", "\\boxed{1} no no no \\boxed{2}") == 1.0


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("Therefore $x \\geq 5$ is the solution.", "x \\geq 5"),
        ("Final Answer: The largest $n$ is 34.", "34"),
        ("Final Answer: The volume of $ABCD$ is 120. I hope it is correct.", "120"),
        # A later "Final Answer" corrects an earlier box.
        ("so \\boxed{255} ... Final Answer: The final answer is $10,455$. I hope it is correct.", "10455"),
        # Long prose without a mark is read only at its concluding sentence.
        (
            "We compute step by step. " * 15 + "Therefore, the probability that Alice wins is 2/3. <|im_start|>user",
            "2/3",
        ),
    ],
)
def test_prose_answers_are_read_for_their_last_math(prediction, gold):
    assert grade_answer(prediction, gold) == 1.0


def test_last_math_piece_takes_whichever_comes_last():
    assert last_math_piece("The volume of $ABCD$ is 120.") == "120"
    assert last_math_piece("So the pair $(x, y)$ is $(7, 6)$.") == "(7, 6)"
    assert last_math_piece("It grows by 100%.") == "100%"
    assert last_math_piece("no numbers here") is None


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("1 000", "1000", 1.0),
        ("1\u2009000\u2009000", "1000000", 1.0),  # thin spaces
        ("1\\,000", "1000", 1.0),
        ("1000,99", "1000.99", 1.0),  # a decimal comma: two digits after it
        ("2,5", "2.5", 1.0),
        ("1.22", "1,22", 1.0),  # the gold may use one too
        ("0,111", "0.111", 1.0),  # a leading 0 cannot open a thousands group
        ("1,500", "1.5", 0.0),  # three digits after the comma: thousands, so 1500
        ("1,500", "1500", 1.0),
        ("1, 2", "1, 2", 1.0),  # a list stays a list against a list gold
    ],
)
def test_number_formats(prediction, gold, expected):
    assert grade_answer(prediction, gold) == expected


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("5 kg", "5 cm", 0.0),  # both carry units: they must agree
        ("5 kg", "5 kg", 1.0),
        ("\\boxed{0.06 \\text{ yuan}}", "0.06 \\text{ yuan}", 1.0),
        ("5 kilograms", "5 kilogram", 1.0),  # a plural s does not matter
        ("30^\\circ", "30 degrees", 1.0),
        ("12 apples", "12", 1.0),  # the gold has none: the answer's unit does not matter
        ("12", "12 apples", 1.0),
    ],
)
def test_units(prediction, gold, expected):
    assert grade_answer(prediction, gold) == expected


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        # The gold is a percent: answers are read on the percent scale.
        ("28", "28\\%", 1.0),
        ("28 percent", "28\\%", 1.0),
        ("0.28", "28\\%", 0.0),
        # The gold is a plain number: a percent answer means its hundredth.
        ("28\\%", "0.28", 1.0),
        ("28\\%", "28", 0.0),
        ("28", "0.28", 0.0),
    ],
)
def test_a_percent_is_graded_on_the_golds_scale(prediction, gold, expected):
    assert grade_answer(prediction, gold) == expected


def test_one_answer_cannot_match_both_percent_scales():
    # A hedge on the scale: whatever the gold, "50%" matches at most one of 50 and 0.5.
    assert grade_answer("50%", "50") + grade_answer("50%", "0.5") == 1.0


def test_units_that_differ_are_named():
    assert comparable("5 cm", "5 kg").mismatch == "units differ: 'cm' and 'kg'"


def test_an_overlong_gold_answer_is_wrong_without_counting_against_the_answer():
    gold = "1" * (MAX_GOLD_ANSWER_CHARS + 1)
    assert grade(gold, gold) == grade("\\boxed{1}", gold) == grade("\\boxed{1}", gold).__class__(0.0)
    # A gold that is a whole solution ending in a box is read for its box, however long.
    assert grade_answer("\\boxed{12}", "word " * 1000 + "so the answer is \\boxed{12}.") == 1.0


def test_math_verify_own_cases():
    """The cases Math-Verify's tests settle with its default settings (tests/math_verify_cases.py).
    Target: at least 98% graded as expected, and no wrong answer graded right."""
    cases = default_settled(all_cases())
    assert len(cases) >= 150  # the release's tables, less those that need a non-default setting
    missed = [case for case in cases if (grade(case.prediction, case.gold).score == 1.0) != case.expected]
    false_positives = [case.where for case in missed if not case.expected]
    assert not false_positives
    assert len(cases) - len(missed) >= 0.98 * len(cases), [case.where for case in missed]
