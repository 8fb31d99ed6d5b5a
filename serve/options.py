"""Multiple-choice answers: which options a question lists, and which one an answer chooses.

Both the verifiable reward (a gold answer that is an option letter) and CapRL's multiple-choice
reward read choices here, so a reward hacker meets the same rules in both:
- only letters written as choices count: "(B)", "B", "B.", "B)", "option B", "the answer is B";
  "A cat is on the mat" names no option, and capital letters inside an option's own text
  ("Vitamin C") are not read as letters;
- a negated letter is no choice ("not B", "B is wrong"), and an answer naming two options, or a
  letter and another option's text ("(B) 3" where 3 is option A's text), chooses none;
- without any letter, an answer that is exactly one option's text chooses that option.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

ALL_LETTERS = "ABCDEFGHIJ"

# "(B)" anywhere; "B." / "B)" / "B:" opening a line. Either lists an option.
_LINE_OPTION = re.compile(r"\(([A-J])\)\s|(?:^|\n)[ \t]*([A-J])[.):]\s")
# The same markers written inline, "A) 3 B) 12 C) 7": they list options only as a run A, B, C...
_INLINE_OPTION = re.compile(r"(?<![A-Za-z0-9])(?:\(([A-J])\)|([A-J])[.):])[ \t]+")


@dataclass(frozen=True)
class ListedOptions:
    """The option letters a question lists, in order, and each option's text ("" if unknown)."""

    letters: str
    texts: tuple[str, ...]


def listed_options(question: str) -> ListedOptions:
    """The options `question` lists, one per line or inline; every letter A-J (texts unknown)
    when it lists none."""
    inline = _inline_run(question)
    if len(inline) >= 2:
        return _with_texts(question, inline)
    found = sorted({m.start(): m for m in _LINE_OPTION.finditer(question)}.values(), key=lambda m: m.start())
    if not found:
        return ListedOptions(ALL_LETTERS, ("",) * len(ALL_LETTERS))
    return _with_texts(question, found)


def _inline_run(question: str) -> list[re.Match]:
    """The longest run of markers lettered A, B, C... in order: one stray "B." in prose is not a list."""
    best: list[re.Match] = []
    run: list[re.Match] = []
    for marker in _INLINE_OPTION.finditer(question):
        letter = marker.group(1) or marker.group(2)
        if letter == "A":
            run = [marker]
        elif run and letter == ALL_LETTERS[len(run)]:
            run.append(marker)
        else:
            continue
        if len(run) > len(best):
            best = list(run)
    return best


def _with_texts(question: str, markers: Sequence[re.Match]) -> ListedOptions:
    """Each option's text runs from its marker to the next marker or the end of its line."""
    by_letter: dict[str, str] = {}
    for index, marker in enumerate(markers):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(question)
        text = question[marker.end() : end].split("\n", 1)[0].strip()
        by_letter.setdefault(marker.group(1) or marker.group(2), text)
    letters = "".join(sorted(by_letter))
    return ListedOptions(letters, tuple(by_letter[letter] for letter in letters))


# A capital A-J standing on its own: "(B)", "B", "B.", "B)" ... but not the B of "Blue" or "B2".
_LETTER = re.compile(r"(?<![A-Za-z0-9])\(?([A-J])\)?(?![A-Za-z0-9])")
# Words that make the letter after them a rejection: "not B", "isn't (B)", "except option B".
_NEGATION_BEFORE = re.compile(
    r"(?:\bnot|n't|\bnever|\bno|\bnor|\bexcept|\bexcluding|\bwithout|\brather than|\binstead of)"
    r"(?:\s+(?:the\s+)?(?:option|choice|answer|letter))?\s*[(\"']?$",
    re.IGNORECASE,
)
_NEGATION_AFTER = re.compile(
    r"^\)?\s*(?:is|was|are)\s+(?:not\b|wrong|incorrect|false)|^\)?\s*(?:isn't|wasn't)", re.IGNORECASE
)
# "A" and "I" are also English words: unmarked and followed by a word, they are the word ("A cat",
# "I think"); but not before a word that treats them as options ("A or B", "A is right").
_WORD_AFTER = re.compile(r"^\s+(?!(?:or|and|nor|vs|versus|is|was)\b)[a-z]")


def chosen_option(answer: str, letters: str, choices: Sequence[str] = ()) -> str | None:
    """The one option `answer` chooses among `letters` (e.g. "ABCD"), or None.

    `choices` are the options' texts in the order of `letters` ("" where unknown). A lone letter
    counts in either case ("b"); in longer text, the capital letters written as choices do.
    """
    answer = _strip_marks(answer)
    bare = re.fullmatch(r"\(?([A-Ja-j])\)?[.:]?", answer)
    if bare:
        letter = bare.group(1).upper()
        return letter if letter in letters else None
    masked, texts_named = _mask_choice_texts(answer, letters, choices)
    named = _letters_chosen(masked) & set(letters)
    if len(named) > 1:
        return None  # a hedge is not an answer
    if named:
        letter = named.pop()
        contradicted = texts_named and letter not in texts_named  # "(B) 3" where 3 is option A
        return None if contradicted else letter
    if _letters_chosen(masked) or _negated_letters(masked):
        return None  # it named only letters outside this question's options, or rejected some
    exact = [letter for letter, text in zip(letters, choices) if text and _normalise(text) == _normalise(answer)]
    return exact[0] if len(exact) == 1 else None


def _strip_marks(answer: str) -> str:
    answer = answer.strip().strip("*$").strip()
    text = re.fullmatch(r"\\(?:text|textbf|mathrm|mathbf)\{(.*)\}", answer, re.DOTALL)
    return text.group(1).strip() if text else answer


def _normalise(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".").strip("\"'`").strip()


def _mask_choice_texts(answer: str, letters: str, choices: Sequence[str]) -> tuple[str, set[str]]:
    """`answer` with every option text it quotes blanked out (so the C of "Vitamin C" is no
    letter), and the letters of the options whose texts it quotes."""
    quoted: set[str] = set()
    # Longest texts first, so "12" is blanked before the "1" it contains could be looked for.
    for letter, text in sorted(zip(letters, choices), key=lambda pair: -len(pair[1])):
        if not text.strip():
            continue
        pattern = re.compile(rf"(?<![\w.]){re.escape(text.strip())}(?![\w]|\.\d)", re.IGNORECASE)
        if pattern.search(answer):
            quoted.add(letter)
            answer = pattern.sub(lambda m: " " * len(m.group(0)), answer)
    return answer, quoted


def _letter_references(text: str) -> list[tuple[str, bool]]:
    """(letter, negated) for each capital letter `text` writes as a choice."""
    found = []
    for match in _LETTER.finditer(text):
        letter, before, after = match.group(1), text[: match.start()], text[match.end() :]
        marked = match.group(0).startswith("(") or match.group(0).endswith(")") or after[:1] in ".:)"
        if letter in "AI" and not marked and _WORD_AFTER.match(after):
            continue  # the article or the pronoun
        negated = bool(_NEGATION_BEFORE.search(before[-40:]) or _NEGATION_AFTER.match(after))
        found.append((letter, negated))
    return found


def _letters_chosen(text: str) -> set[str]:
    return {letter for letter, negated in _letter_references(text) if not negated}


def _negated_letters(text: str) -> set[str]:
    return {letter for letter, negated in _letter_references(text) if negated}
