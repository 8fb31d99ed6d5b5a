"""The boxed answer every role reads: `\\boxed{...}` (or `\\boxed x`), its braces balanced.

The reasoner boxes its final answer, the graders read it, and the two-stage prompt hands the
reasoner the captioner's boxed answer: one reading for all of them.
"""

from __future__ import annotations

import re

BOXED = re.compile(r"\\boxed(?![A-Za-z])")


def balanced_braces(text: str, open_index: int) -> str | None:
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
    for match in BOXED.finditer(text):
        rest_start = match.end()
        stripped = text[rest_start:].lstrip()
        if stripped.startswith("{"):
            content = balanced_braces(text, len(text) - len(stripped))
        else:
            # `\boxed 3`: the next token, only if a space separates it from the command.
            token = re.match(r"[^\s$]+", stripped)
            spaced = text[rest_start : rest_start + 1].isspace()
            content = token.group(0) if token and spaced else None
        if content is not None and content.strip():
            parts.append(content.strip())
    return parts
