"""Written forms of a final answer, made comparable before math-verify sees them.

- Prose: "Therefore $x \\geq 5$ is the solution." is read for its last math span (`$..$`,
  `\\(..\\)`), else its last number; a sentence is never handed whole to the math parser.
- Numbers: "1 000" (spaces, thin spaces, `\\,` between groups of three) is 1000; a decimal
  comma ("2,74", "1000,99") is read as a point when it cannot be a thousands separator (not
  exactly three digits after it, or a leading 0). Both readings apply only where the gold answer
  is a single number, so "1,2" stays a list against a list gold.
- Units: where the gold answer and the answer both carry a unit ("5 kg", "0.06 \\text{ yuan}"),
  the units must agree; where only one side carries one, the values alone are compared.
- Percent: the gold answer decides the scale. Against "28\\%", "28" and "28 percent" are 28;
  against 0.28, "28\\%" is 0.28 and "28" is 28. An answer cannot match both scales.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# $..$, \(..\) and \[..\] on one line: where prose writes its mathematics.
_MATH_SPAN = re.compile(r"\$\$?([^$\n]+?)\$\$?|\\\((.+?)\\\)|\\\[(.+?)\\\]")
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox|operatorname)\s*\{[^{}]*\}")
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_NUMBER_IN_PROSE = re.compile(r"(?<![\w.])[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+)?(?:\s*(?:\\?%|percent\b))?")
# Words a bare number may be followed by as its unit: letters, or a LaTeX text command, or degrees.
_UNIT = (
    r"\\(?:text|textrm|mathrm|mbox)\s*\{\s*(?P<latex>[A-Za-z][A-Za-z .²³/^]*?)\s*\}"
    r"|(?P<word>[A-Za-z]{2,}(?:\s+[A-Za-z]{2,})?)"
    r"|(?P<degree>°|\^\s*\{?\s*\\circ\s*\}?)"
)
_WITH_UNIT = re.compile(rf"(?P<value>[^A-Za-z\\]*?\d[^A-Za-z\\]*?)\s*(?:{_UNIT})\s*\.?")
_PERCENT = re.compile(r"(?P<value>.*?\S)\s*(?:\\?%|percent(?:age)?|pct)\s*\.?", re.IGNORECASE | re.DOTALL)
_DEGREE_WORDS = frozenset({"degree", "degrees", "deg"})
# Groups of three digits joined by a space, a thin or no-break space, `\,`, `\ ` or `~`.
_GROUPED = re.compile(r"(?<![\d.,])\d{1,3}(?:(?:[ \u2009\u202f\u00a0~]|\\,|\\ )\d{3})+(?![\d,])")
_DECIMAL_COMMA = re.compile(r"(?<![\d.,])(\d+),(\d+)(?![\d.,])")
_SINGLE_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d+)?|\.\d+)|[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def is_prose(answer: str) -> bool:
    """Three or more words outside its math spans and `\\text{}` parts: a sentence, not an answer."""
    bare = _TEXT_COMMAND.sub(" ", _MATH_SPAN.sub(" ", answer))
    return len(_WORD.findall(bare)) >= 3


def last_math_piece(prose: str) -> str | None:
    """Whichever comes last in a sentence: a math span, or a number outside them (with a % after
    it); None if it has neither. "The volume of $ABCD$ is 120." gives 120."""
    spans = [(m.start(), (m.group(1) or m.group(2) or m.group(3)).strip()) for m in _MATH_SPAN.finditer(prose)]
    outside = _MATH_SPAN.sub(lambda m: " " * len(m.group(0)), prose)
    numbers = [(m.start(), m.group(0).strip().rstrip(",")) for m in _NUMBER_IN_PROSE.finditer(outside)]
    pieces = sorted(spans + numbers)
    return pieces[-1][1] if pieces else None


@dataclass(frozen=True)
class Measure:
    """An answer split into its value and what it is measured in (unit None: none written)."""

    value: str
    unit: str | None = None
    percent: bool = False


def measure(answer: str) -> Measure:
    text = answer.strip()
    percent = _PERCENT.fullmatch(text)
    if percent:
        return Measure(percent.group("value").strip(), None, True)
    with_unit = _WITH_UNIT.fullmatch(text)
    if with_unit:
        unit = with_unit.group("latex") or with_unit.group("word") or "degree"
        return Measure(with_unit.group("value").strip(), _unit_key(unit))
    return Measure(text)


def _unit_key(unit: str) -> str:
    """Spelling-insensitive unit: case, spaces and a plural s do not matter; degrees are one unit."""
    key = " ".join(unit.lower().split())
    if key in _DEGREE_WORDS:
        return "degree"
    return key[:-1] if len(key) > 3 and key.endswith("s") else key


@dataclass(frozen=True)
class Comparable:
    """The two sides as math-verify should compare them, or `mismatch` saying why they differ."""

    gold: str
    answer: str
    mismatch: str | None = None


def comparable(gold: str, answer: str) -> Comparable:
    """Gold and answer in forms math-verify compares on one scale (module doc)."""
    if is_prose(answer):
        answer = last_math_piece(answer) or answer
    gold_measure, answer_measure = measure(gold), measure(answer)
    if gold_measure.unit and answer_measure.unit and gold_measure.unit != answer_measure.unit:
        return Comparable(gold, answer, f"units differ: {gold_measure.unit!r} and {answer_measure.unit!r}")
    gold_value, answer_value = gold_measure.value, answer_measure.value
    if answer_measure.percent and not gold_measure.percent:
        answer_value = f"\\frac{{{answer_value}}}{{100}}"  # "28%" against 0.28 is 28/100
    if _SINGLE_NUMBER.fullmatch(_plain(gold_value)):
        gold_value, answer_value = _plain(gold_value), _plain(answer_value)
    return Comparable(gold_value, answer_value)


def _plain(number: str) -> str:
    """Digit groups joined ("1 000" -> "1000") and an unambiguous decimal comma read as a point."""
    joined = _GROUPED.sub(lambda m: re.sub(r"[^\d]", "", m.group(0)), number.strip())
    return _DECIMAL_COMMA.sub(_decimal_comma, joined)


def _decimal_comma(match: re.Match) -> str:
    whole, fraction = match.group(1), match.group(2)
    thousands = len(fraction) == 3 and not whole.startswith("0")
    return match.group(0) if thousands else f"{whole}.{fraction}"
