"""Reward grading: does a reasoner's answer match the ground truth?

RACRO (arXiv 2506.04559): reward 1.0 iff the reasoner's `\\boxed{}` answer grades equal to the
ground truth, else 0.0. CapRL (InternLM/CapRL): the reasoner answers multiple-choice questions
about the image from the caption alone; the answer is the first option letter, and the
caption's reward is the mean accuracy over its questions (`caption_reward`).

Three kinds of gold answer, checked in this order:
- an option letter A-J ("B", "(B)", "B."): the one option the prediction chooses among those
  the question lists (any of A-J if it lists none) must be it; a letter outside them never
  counts, and an answer naming several options ("B and C") chooses none (`chosen_option`);
- maths (has a digit, a LaTeX command or an operator): math-verify, gold first;
- anything else: exact match after normalisation (case, spaces, quotes, trailing period).
A gold answer in several `\\boxed{}` parts is graded as a whole (the prediction's parts joined
alike), not by its last part.

math-verify's timeouts use SIGALRM, which raises off the main thread (Ray Serve replicas run
user code there), so they are disabled (`parsing_timeout=None`, `timeout_seconds=None`).
Bounding the input length is not enough: `9^{9^{9}}` is a billion-bit integer, and
`8!99\\log6+e` against 1/2 makes `simplify` build log(6^3991680), seconds of bignum work.
So time is bounded four ways: input length; bracket nesting, checked before parsing (the
LaTeX parser's time grows fast with depth: 40 nested braces ran into the deadline);
`expression_cost.is_too_costly` on the parsed expressions, which refuses numbers and expansions
too big for one C call to finish quickly; and a per-answer wall-clock deadline that works on any
thread (`deadline.call_with_deadline`) for the rest of sympy, which has no time bound of its own.
Grading never raises: a malformed answer is a wrong answer. An answer refused as too costly to
grade is wrong too, and `grade` says so, so that the pool can count them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from math_verify import parse, verify

from serve.deadline import call_with_deadline
from serve.expression_cost import is_too_costly

# The final answer sits at the end of a reasoning trace; the tail bounds the regex work.
MAX_PREDICTION_CHARS = 2000
# A "final answer" longer than this is prose or junk, not an answer; it also bounds parsing.
MAX_ANSWER_CHARS = 300
# Legitimate comparisons take well under 0.5 s; past this an answer is graded wrong.
MATH_TIMEOUT_S = 3.0
# Deepest bracket nesting ({[( and \left( alike) a parsed answer may have: real answers
# (\frac{\sqrt{2}}{2}, \left(\frac{1}{2}\right)^{2}) stay below 5.
MAX_NESTING = 8


class TooCostly(Exception):
    """The answer would cost too much to grade; it is graded wrong, and counted."""


@dataclass(frozen=True)
class Grade:
    score: float  # 1.0 right, 0.0 wrong
    refused: str | None = None  # why it was too costly to grade, if it was

_BOXED = re.compile(r"\\boxed(?![A-Za-z])")
_ANSWER_PHRASE = re.compile(r"answer\s*(?:is\s*:?|:)\s*(.+)", re.IGNORECASE)
_TEXT_WRAPPER = re.compile(r"^\\(?:text|textbf|mathrm|mathbf)\{(.*)\}$", re.DOTALL)
_MATH_HINT = re.compile(r"\d|\\[A-Za-z]|[+*/^=<>]")
_QUOTES = "\"'`\u201c\u201d\u2018\u2019"


def _balanced_braces(text: str, open_index: int) -> str | None:
    """Content of the `{...}` group opening at `open_index`; None if it never closes."""
    depth = 0
    i = open_index
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2  # `\{` and `\}` are literal braces in LaTeX, not grouping
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[open_index + 1 : i]
        i += 1
    return None


def boxed_parts(text: str) -> list[str]:
    """Contents of every well-formed, non-empty `\\boxed{...}` (or `\\boxed x`), in order."""
    parts = []
    for match in _BOXED.finditer(text):
        rest_start = match.end()
        stripped = text[rest_start:].lstrip()
        if stripped.startswith("{"):
            content = _balanced_braces(text, len(text) - len(stripped))
        else:
            # `\boxed 3`: the next token, only if a space separates it from the command.
            token = re.match(r"[^\s$]+", stripped)
            spaced = text[rest_start : rest_start + 1].isspace()
            content = token.group(0) if token and spaced else None
        if content is not None and content.strip():
            parts.append(content.strip())
    return parts


def _last_boxed(text: str) -> str | None:
    """Content of the last well-formed, non-empty `\\boxed{...}`."""
    parts = boxed_parts(text)
    return parts[-1] if parts else None


def strip_wrappers(answer: str) -> str:
    """Drop markup around a whole answer: `$..$`, `\\(..\\)`, `**..**`, `\\text{..}`."""
    previous = None
    while previous != answer:
        previous = answer
        answer = answer.strip().strip("*").strip()
        for left, right in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            long_enough = len(answer) >= len(left) + len(right)
            if long_enough and answer.startswith(left) and answer.endswith(right):
                answer = answer[len(left) : len(answer) - len(right)]
        wrapped = _TEXT_WRAPPER.match(answer)
        if wrapped and _balanced_braces(answer, answer.index("{")) == wrapped.group(1):
            answer = wrapped.group(1)
    return answer


def extract_final_answer(text: str) -> str | None:
    """The final answer in a reasoning trace, or None.

    The content of the last `\\boxed{...}` (balanced, nested braces fine; `\\boxed 3` too),
    else what follows the last "answer is" / "Answer:" on its line (trailing period and
    surrounding `$`/`**` removed), else None.
    """
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    phrases = list(_ANSWER_PHRASE.finditer(text))
    if phrases:
        answer = strip_wrappers(phrases[-1].group(1).strip().rstrip("."))
        return answer or None
    return None


def _gold_option_letter(gold: str) -> str | None:
    """'B', '(B)', 'B.', 'B)', 'b' -> 'B'; anything else -> None."""
    match = re.fullmatch(r"\(?\s*([A-Ja-j])\s*[).:]?", strip_wrappers(gold))
    return match.group(1).upper() if match else None


# An option as a question lists it: "(B) 3", or "B. 3" / "B) 3" / "B: 3" opening a line.
_LISTED_OPTION = re.compile(r"\(([A-J])\)\s|(?:^|\n)\s*([A-J])[.):]\s")
ALL_LETTERS = "ABCDEFGHIJ"


def option_letters(question: str) -> str:
    """The option letters `question` lists, in order ("ABCD"); every letter A-J if it lists none."""
    found = {a or b for a, b in _LISTED_OPTION.findall(question)}
    return "".join(sorted(found)) or ALL_LETTERS


# An option letter standing on its own: "(B)", "B", "B.", "B)" ... but not the B of "Blue" or "B2".
_OPTION_REFERENCE = re.compile(r"(?<![A-Za-z0-9])\(?([A-J])\)?(?![A-Za-z0-9])")


def chosen_option(answer: str, letters: str, choices: Sequence[str] = ()) -> str | None:
    """The one option an answer chooses among `letters` (e.g. "ABCD"), or None.

    A lone letter counts in either case ("b", "(B)", "B."); in longer text, the uppercase letters
    standing on their own do ("(B) 12", "It is B"). A letter outside `letters` never counts, and
    an answer naming several options ("B and C", "I think B" with ten options) chooses none: a
    hedge is not an answer. Without any letter, the answer may be one choice's text ("12").
    """
    answer = strip_wrappers(answer)
    bare = re.fullmatch(r"\(?([A-Ja-j])\)?[.:]?", answer)
    if bare:
        letter = bare.group(1).upper()
        return letter if letter in letters else None
    named = {m.group(1) for m in _OPTION_REFERENCE.finditer(answer)}
    if named:
        # Letters outside this question's options are words ("I", "A" as an article), not choices.
        inside = named & set(letters)
        return inside.pop() if len(inside) == 1 else None
    texts = [letter for letter, choice in zip(letters, choices) if _normalise(choice) == _normalise(answer)]
    return texts[0] if len(texts) == 1 else None


def _normalise(answer: str) -> str:
    """Case-, space-, quote- and trailing-period-insensitive form for exact matching."""
    answer = strip_wrappers(answer)
    answer = " ".join(answer.lower().split())
    answer = answer.rstrip(".").strip().strip(_QUOTES).strip().rstrip(".")
    return answer


def _parse_math(answer: str) -> list:
    """math-verify parse with SIGALRM timeouts off; `$..$` so LaTeX extraction sees it."""
    inner = strip_wrappers(answer)
    parsed = parse(f"${inner}$", parsing_timeout=None)
    return parsed or parse(inner, parsing_timeout=None)


def _math_equal(gold: str, answer: str) -> bool:
    """math-verify equivalence, gold first (it is not symmetric); False if unparseable."""
    gold_parsed = _parse_math(gold)
    answer_parsed = _parse_math(answer)
    if not gold_parsed or not answer_parsed:
        return False
    if any(is_too_costly(e) for e in gold_parsed + answer_parsed if not isinstance(e, str)):
        raise TooCostly("numbers or expansions too large to evaluate")  # e.g. 9^{9^{9}} would hang the replica
    return bool(verify(gold_parsed, answer_parsed, timeout_seconds=None))


def nesting_depth(text: str) -> int:
    """Deepest nesting of (), [] and {} in `text` (unbalanced closers are ignored)."""
    depth = deepest = 0
    for char in text:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth = max(0, depth - 1)
    return deepest


def candidate_answer(prediction: str) -> str | None:
    """The prediction's final answer; a short unmarked prediction is its own answer.

    A long prediction without `\\boxed{}` or "answer is" has no final answer: rewarding a
    number math-verify fishes out of prose would reward unmarked guesses.
    """
    tail = prediction[-MAX_PREDICTION_CHARS:]
    answer = extract_final_answer(tail)
    if answer is None:
        answer = tail.strip()
    if not answer or len(answer) > MAX_ANSWER_CHARS:
        return None
    return answer


_TIMED_OUT = object()


def _whole(text: str) -> str | None:
    """Several `\\boxed{}` parts as one answer ("2, 3"): a gold answer in parts is graded whole."""
    parts = boxed_parts(text[-MAX_PREDICTION_CHARS:])
    return ", ".join(parts) if len(parts) > 1 else None


def _grade(prediction: str, gold: str, timeout_s: float, question: str) -> float:
    gold_whole = _whole(gold)
    gold_answer = gold_whole or extract_final_answer(gold) or gold.strip()
    answer = (_whole(prediction) if gold_whole else None) or candidate_answer(prediction)
    if not gold_answer or answer is None:
        return 0.0
    gold_letter = _gold_option_letter(gold_answer)
    if gold_letter is not None:
        return float(chosen_option(answer, option_letters(question)) == gold_letter)
    if _normalise(answer) == _normalise(gold_answer):
        return 1.0
    if _MATH_HINT.search(gold_answer):
        if nesting_depth(answer) > MAX_NESTING:
            raise TooCostly(f"brackets nested {nesting_depth(answer)} deep (limit {MAX_NESTING})")
        equal = call_with_deadline(lambda: _math_equal(gold_answer, answer), timeout_s, _TIMED_OUT)
        if equal is _TIMED_OUT:
            raise TooCostly(f"comparison ran past its {timeout_s} s deadline")
        return float(equal)
    return 0.0


def grade(prediction: str, gold: str, *, question: str = "", timeout_s: float = MATH_TIMEOUT_S) -> Grade:
    """Whether `prediction`'s final answer matches `gold`, and whether it was refused as too
    costly to grade (then it is wrong). Never raises; safe to call from any thread.

    `question` names the options a letter answer may choose among (those it lists; any of A-J
    if none); `timeout_s` bounds the math-verify comparison."""
    if not isinstance(prediction, str) or not isinstance(gold, str):
        return Grade(0.0)
    try:
        return Grade(_grade(prediction, gold, timeout_s, question))
    except TooCostly as err:
        return Grade(0.0, refused=str(err))
    except Exception:
        return Grade(0.0)


def grade_answer(prediction: str, gold: str, *, question: str = "", timeout_s: float = MATH_TIMEOUT_S) -> float:
    """1.0 if `prediction`'s final answer matches `gold`, else 0.0 (`grade`'s score)."""
    return grade(prediction, gold, question=question, timeout_s=timeout_s).score


def caption_grade(answers: Sequence[str], gold: str, *, question: str = "", timeout_s: float = MATH_TIMEOUT_S) -> tuple[float, int]:
    """Mean correctness of the reasoner's answers for one caption (CapRL / RACRO reward), and how
    many of them were refused as too costly to grade."""
    if len(answers) == 0:
        raise ValueError("caption_reward needs at least one reasoner answer")
    grades = [grade(a, gold, question=question, timeout_s=timeout_s) for a in answers]
    return sum(g.score for g in grades) / len(grades), sum(g.refused is not None for g in grades)


def caption_reward(answers: Sequence[str], gold: str, *, question: str = "", timeout_s: float = MATH_TIMEOUT_S) -> float:
    """`caption_grade`'s reward."""
    return caption_grade(answers, gold, question=question, timeout_s=timeout_s)[0]
