"""Grading a response to a benchmark item as the benchmarks' own scorers do.

The final answer is read from the response as the reward reads it (the last `\\boxed{}`, else
"the answer is ...", else a short reply as a whole). Then, by the item's kind:
- multiple choice: the one option it chooses (its letter, or one choice's exact text) must be
  the gold option; a hedge naming several options is wrong (`serve.options.chosen_option`);
- integer: the one number in the answer equals the gold integer;
- float: the one number lies within half a unit of the gold's last decimal place (the item's
  `precision`, else the decimals the gold is written with), as MathVista rounds to `precision`;
- list: the same numbers in the same order;
- text, and numbers written as expressions (`\\frac{1}{2}`): the reward's grading (normalised
  exact match, then math equivalence by math-verify).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from records.benchmarks import BenchmarkItem
from serve.grading import candidate_answer, grade, strip_wrappers
from serve.options import chosen_option

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class ItemGrade:
    correct: bool
    extracted: str | None  # what was read as the answer (the option's letter for multiple choice)


def grade_item(item: BenchmarkItem, response: str) -> ItemGrade:
    answer = candidate_answer(response) if isinstance(response, str) else None
    if answer is None:
        return ItemGrade(False, None)
    if item.multiple_choice:
        letter = chosen_option(answer, item.letters, item.choices)
        return ItemGrade(letter == item.answer, letter)
    numbers = _numbers(answer)
    if item.answer_type in ("integer", "float") and len(numbers) == 1:
        return ItemGrade(_numbers_match(item, numbers[0]), answer)
    if item.answer_type == "list":
        gold = _numbers(item.answer)
        equal = len(numbers) == len(gold) and all(abs(a - b) <= 1e-9 * max(1.0, abs(b)) for a, b in zip(numbers, gold))
        return ItemGrade(equal, answer)
    return ItemGrade(grade(answer, item.answer).score == 1.0, answer)


def _numbers(text: str) -> list[float]:
    """The plain numbers written in `text` (thousands separators dropped)."""
    plain = re.sub(r"(?<=\d),(?=\d{3})", "", strip_wrappers(text))
    return [float(n) for n in _NUMBER.findall(plain)]


def _numbers_match(item: BenchmarkItem, value: float) -> bool:
    gold = _numbers(item.answer)
    if len(gold) != 1:
        return grade(str(value), item.answer).score == 1.0
    if item.answer_type == "integer":
        return value == gold[0]
    return abs(value - gold[0]) <= 0.5 * 10.0 ** -decimals(item) + 1e-12


def decimals(item: BenchmarkItem) -> int:
    """Decimal places a float answer is compared at: the item's precision, else the gold's own."""
    if item.precision is not None:
        return item.precision
    written = strip_wrappers(item.answer).strip()
    return len(written.split(".", 1)[1]) if "." in written else 0
