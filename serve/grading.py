"""Reward grading: does a reasoner's answer match the ground truth?

RACRO (arXiv 2506.04559): reward 1.0 iff the reasoner's final answer grades equal to the ground
truth, else 0.0. CapRL (InternLM/CapRL): the reasoner answers multiple-choice questions about the
image from the caption alone; the caption's reward is the mean accuracy over its questions.

The final answer is the last mark (`\\boxed{}`, or a later "answer is" / "Final Answer:"), else
long prose's concluding sentence, else a short reply as a whole (`candidate_answer`). Then three
kinds of gold answer, checked in this order:
- an option letter A-J ("B", "(B)", "B."): the one option the answer chooses among those the
  question lists (serve/options.py: negations, articles, hedges and contradictions choose none);
- maths (has a digit, a LaTeX command or an operator): math-verify, gold first, on the forms
  serve/answer_forms.py makes comparable (prose read for its last math, digit groups and decimal
  commas, units that must agree, the percent scale the gold decides);
- anything else: exact match after normalisation (case, spaces, quotes, trailing period).
Several `\\boxed{}` parts are graded as one list where the gold is a list; a gold answer boxed in
parts is a list only when written as one.

math-verify's timeouts use SIGALRM, which raises off the main thread (Ray Serve replicas run
user code there), so they are disabled (`parsing_timeout=None`, `timeout_seconds=None`).
Bounding the input length is not enough: `9^{9^{9}}` is a billion-bit integer, and
`8!99\\log6+e` against 1/2 makes `simplify` build log(6^3991680), seconds of bignum work.
So time is bounded by inspection, before anything is evaluated: input length (answers, and gold
answers, which the data preparation also refuses); bracket nesting, checked before parsing (the
LaTeX parser's time grows fast with depth); what the parser itself computes (`parse_cost`:
`\\binom`, `\\gcd`, big determinants); and the parsed expressions' cost (`expression_cost`:
numbers, expansions, sums and products, powers of trigonometric functions, integrals). A
per-answer wall-clock deadline that works on any thread (`deadline.call_with_deadline`) stays
behind them for the rest of sympy, which has no time bound of its own.
Grading never raises: a malformed answer is a wrong answer. An answer refused as too costly to
grade is wrong too, and `grade` says so, so that the pool can count them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from math_verify import parse, verify

from serve.answer_forms import comparable
from serve.deadline import call_with_deadline
from serve.expression_cost import why_too_costly
from serve.options import chosen_option, listed_options
from serve.parse_cost import parse_cost_problem
from vlm.boxed import BOXED, balanced_braces, boxed_parts
from wire.scoring import MAX_GOLD_ANSWER_CHARS

# Math-Verify warns on every first call that its own timeout is off: grading runs it under our
# deadline (serve/deadline.py), so the warning, repeated by every process, says nothing.
logging.getLogger("math_verify").setLevel(logging.ERROR)
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


# Found one by one ("Final Answer: The final answer is 7" holds two marks): the last one counts.
_ANSWER_MARK = re.compile(r"answer\s*(?:is\s*:?|:)\s*", re.IGNORECASE)
# A sentence ends at a period, "!" or "?" before a space: not at the point of "3.5".
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_CONCLUSION = re.compile(r"(?:^|(?<=\s))((?:Therefore|Thus|Hence|So|In conclusion)\b[^\n]*?)(?=[.!?](?:\s|$)|\n|$)")
_DELIMITERS = re.compile(r"\\[()\[\]]|\\q?quad|\\text|\$")
# Between the parts of a gold answer boxed as a list: no words, or a comma or "and" among them
# ("\boxed{1} papers and \boxed{2} bins"); "\boxed{1} no no no \boxed{2}" is not a list.
_LIST_JOINER = re.compile(r",|;|&|\band\b")
_TEXT_WRAPPER = re.compile(r"^\\(?:text|textbf|mathrm|mathbf)\{(.*)\}$", re.DOTALL)
_MATH_HINT = re.compile(r"\d|\\[A-Za-z]|[+*/^=<>]")
# Where a chat model's transcript runs on into the next turn: the reply ends there.
_CHAT_TOKEN = re.compile(r"<\|im_(?:start|end)\|>|<\|endoftext\|>")
_QUOTES = "\"'`\u201c\u201d\u2018\u2019"


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
        if wrapped and balanced_braces(answer, answer.index("{")) == wrapped.group(1):
            answer = wrapped.group(1)
    return answer


def extract_final_answer(text: str) -> str | None:
    """The final answer in a reasoning trace, or None.

    Whichever final-answer mark comes last: the last `\\boxed{...}` (balanced, nested braces
    fine; `\\boxed 3` too), or what follows the last "answer is" / "Answer:" to the end of its
    sentence (surrounding `$`/`**` removed). So "\\boxed{255} ... Final Answer: 10,455." answers
    10,455: a later statement corrects an earlier box.
    """
    boxes = list(BOXED.finditer(text))
    phrases = list(_ANSWER_MARK.finditer(text))
    if phrases and (not boxes or phrases[-1].start() > boxes[-1].start()):
        line = text[phrases[-1].end() :].split("\n", 1)[0]
        answer = strip_wrappers(_SENTENCE_END.split(line, 1)[0].strip().rstrip("."))
        if answer:
            return answer
    return _last_boxed(text)


def _concluding_sentence(text: str) -> str | None:
    """The last sentence opening with "Therefore", "Thus", "Hence", "So": how prose that marks
    no answer states its result."""
    found = list(_CONCLUSION.finditer(text))
    return found[-1].group(1).strip() if found else None


def _gold_option_letter(gold: str) -> str | None:
    """'B', '(B)', 'B.', 'B)', 'b' -> 'B'; anything else -> None."""
    match = re.fullmatch(r"\(?\s*([A-Ja-j])\s*[).:]?", strip_wrappers(gold))
    return match.group(1).upper() if match else None


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
    for expr in gold_parsed + answer_parsed:
        why = None if isinstance(expr, str) else why_too_costly(expr)
        if why:
            raise TooCostly(why)  # e.g. 9^{9^{9}} would hang the replica
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
    """The prediction's final answer: its marked answer, else the concluding sentence of long
    prose, else a short unmarked prediction as a whole.

    Long prose that marks no answer and concludes nothing has no final answer: rewarding a number
    math-verify fishes out of it would reward unmarked guesses.
    """
    tail = prediction[-MAX_PREDICTION_CHARS:]
    answer = extract_final_answer(tail)
    if answer is None:
        answer = tail.strip()
        if len(answer) > MAX_ANSWER_CHARS:
            answer = _concluding_sentence(_CHAT_TOKEN.split(answer, 1)[0]) or ""
    if not answer or len(answer) > MAX_ANSWER_CHARS:
        return None
    return answer


_TIMED_OUT = object()


def _boxed_list(text: str, *, strict: bool) -> str | None:
    """Several `\\boxed{}` parts as one list answer ("2, 3"), or None.

    `strict` (for a gold answer): only when nothing but list separators lies between the parts,
    so "\\boxed{1} no no no \\boxed{2}" is the answer 2, not the list 1, 2.
    """
    tail = text[-MAX_PREDICTION_CHARS:]
    boxes = list(BOXED.finditer(tail))
    parts = boxed_parts(tail)
    if len(parts) < 2 or len(parts) != len(boxes):
        return None
    if strict:
        gaps = [tail[_box_end(tail, a) : b.start()] for a, b in zip(boxes, boxes[1:])]
        if not all(_LIST_JOINER.search(gap) or not re.search("[A-Za-z]", _DELIMITERS.sub("", gap)) for gap in gaps):
            return None
    return ", ".join(parts)


def _box_end(text: str, box: re.Match) -> int:
    """Where the `\\boxed{...}` starting at `box` ends."""
    opening = text.index("{", box.end()) if "{" in text[box.end() : box.end() + 2] else box.end()
    content = balanced_braces(text, opening)
    return opening + len(content) + 2 if content is not None else box.end()


def _is_list(answer: str) -> bool:
    """A comma outside brackets: "2, 3", "{1,2,3}", "(1, 2), (3, 4)"; not "(1, 2)" nor "1,000"."""
    depth = 0
    for index, char in enumerate(answer):
        depth += char in "(["
        depth -= char in ")]"
        if char == "," and depth == 0 and not re.match(r"\d{3}(?!\d)", answer[index + 1 :]):
            return True
    return False


def _grade(prediction: str, gold: str, timeout_s: float, question: str) -> float:
    gold_answer = _boxed_list(gold, strict=True) or extract_final_answer(gold) or gold.strip()
    if not gold_answer or len(gold_answer) > MAX_GOLD_ANSWER_CHARS:
        return 0.0  # an over-long gold is the data's fault (check-data lists it), not the answer's
    listed = _boxed_list(prediction, strict=False) if _is_list(gold_answer) else None
    answer = listed or candidate_answer(prediction)
    if answer is None:
        return 0.0
    gold_letter = _gold_option_letter(gold_answer)
    if gold_letter is not None:
        options = listed_options(question)
        return float(chosen_option(answer, options.letters, options.texts) == gold_letter)
    if _normalise(answer) == _normalise(gold_answer):
        return 1.0
    if not _MATH_HINT.search(gold_answer):
        return 0.0
    sides = comparable(strip_wrappers(gold_answer), strip_wrappers(answer))
    if sides.mismatch:
        return 0.0
    if nesting_depth(sides.answer) > MAX_NESTING:
        raise TooCostly(f"brackets nested {nesting_depth(sides.answer)} deep (limit {MAX_NESTING})")
    # What the LaTeX parser itself would compute (\binom{10^6}{5*10^5}) is refused before it parses.
    problem = parse_cost_problem(sides.answer)
    if problem:
        raise TooCostly(problem)
    equal = call_with_deadline(lambda: _math_equal(sides.gold, sides.answer), timeout_s, _TIMED_OUT)
    if equal is _TIMED_OUT:
        raise TooCostly(f"comparison ran past its {timeout_s} s deadline")
    return float(equal)


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


def caption_grade(
    answers: Sequence[str], gold: str, *, question: str = "", timeout_s: float = MATH_TIMEOUT_S
) -> tuple[float, int]:
    """Mean correctness of the reasoner's answers for one caption (CapRL / RACRO reward), and how
    many of them were refused as too costly to grade."""
    if len(answers) == 0:
        raise ValueError("caption_reward needs at least one reasoner answer")
    grades = [grade(a, gold, question=question, timeout_s=timeout_s) for a in answers]
    return sum(g.score for g in grades) / len(grades), sum(g.refused is not None for g in grades)


def caption_reward(
    answers: Sequence[str], gold: str, *, question: str = "", timeout_s: float = MATH_TIMEOUT_S
) -> float:
    """`caption_grade`'s reward."""
    return caption_grade(answers, gold, question=question, timeout_s=timeout_s)[0]
