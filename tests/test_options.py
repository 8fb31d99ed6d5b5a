"""Option letters and texts (serve/options.py): what a question lists and what an answer chooses.

Each case is a way a reward hacker (or a careless reasoner) could be credited with an option it
did not choose; both the verifiable reward (a gold letter) and the multiple-choice reward read
choices through `chosen_option`.
"""

import pytest

from serve.grading import grade_answer
from serve.options import ALL_LETTERS, chosen_option, listed_options
from serve.rewards import McqAsk, mcq_correct

LISTED = "How many circles are there?\n(A) 1\n(B) 2\n(C) 3\n(D) 4"
INLINE = "How many circles are there? A) 3 B) 12 C) 7"


def test_options_listed_one_per_line_or_inline_with_their_texts():
    assert listed_options(LISTED).letters == "ABCD" and listed_options(LISTED).texts == ("1", "2", "3", "4")
    assert listed_options("Pick one:\nA. red\nB. blue").texts == ("red", "blue")
    inline = listed_options(INLINE)
    assert (inline.letters, inline.texts) == ("ABC", ("3", "12", "7"))
    assert listed_options("Which is it? (A) red (B) blue (C) green").texts == ("red", "blue", "green")
    # One stray "B." in prose is not a list of options; every letter may then be one.
    assert listed_options("Is the point B. on the line?").letters == ALL_LETTERS


@pytest.mark.parametrize(
    ("answer", "chosen"),
    [
        ("not B", None),  # a negated letter is no choice
        ("It is not (B)", None),
        ("The answer is not B, it is E", None),  # E is not among ABCD: nothing is chosen
        ("not B, it is C", "C"),
        ("B is wrong, C", "C"),
        ("A cat is on the mat", None),  # the article, not option A
        ("I think it is B", "B"),  # the pronoun, not option I
        ("A is correct", "A"),
        ("(A)", "A"),
        ("Option A", "A"),
        ("B and C", None),  # a hedge
        ("A or B", None),  # a hedge, though A is also an article
    ],
)
def test_only_letters_written_as_choices_choose(answer, chosen):
    assert chosen_option(answer, "ABCD") == chosen


def test_a_gold_letter_is_not_credited_to_a_negation_or_an_article():
    assert grade_answer("not B", "B", question=LISTED) == 0.0
    assert grade_answer("The answer is not B, it is E", "B", question=LISTED) == 0.0
    assert grade_answer("A cat is on the mat", "A", question=LISTED) == 0.0


def test_an_options_text_is_graded_as_its_letter_in_both_paths():
    # The verifiable path reads the options from the question, inline ones too.
    assert grade_answer("\\boxed{12}", "B", question=INLINE) == 1.0
    assert grade_answer("\\boxed{7}", "B", question=INLINE) == 0.0
    assert grade_answer("\\boxed{2}", "B", question=LISTED) == 1.0
    # The multiple-choice path reads them from the ask.
    ask = McqAsk("q", "ABC", ("3", "12", "7"), "B")
    assert mcq_correct("\\boxed{12}", ask) and not mcq_correct("\\boxed{3}", ask)


def test_capital_letters_inside_an_options_text_are_not_letters():
    # "Vitamin C" names option B; its C is not option C.
    choices = ("Vitamin A", "Vitamin C", "Iron")
    assert chosen_option("B) Vitamin C", "ABC", choices) == "B"
    assert chosen_option("Vitamin C", "ABC", choices) == "B"
    assert chosen_option("(C) Vitamin C", "ABC", choices) is None  # the letter contradicts the text


def test_a_letter_contradicted_by_another_options_text_chooses_nothing():
    assert chosen_option("(B) 3", "ABC", ("3", "12", "7")) is None
    assert chosen_option("(B) 12", "ABC", ("3", "12", "7")) == "B"
    # "1" is not read inside "12".
    assert chosen_option("(B) 12", "AB", ("1", "12")) == "B"
