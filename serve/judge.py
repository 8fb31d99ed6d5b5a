"""The judge reward (Perception-R1): an LLM grades a response against a reference.

The judge is asked for one strict line, `Score: N` with N an integer from 0 (wrong) to 10
(fully right), as the last line of its reply (it may reason before it). Anything else (no
such line, a number out of range, a second score) fails closed: the response scores 0 and the
reply is counted as unparsed (`rollout/judge_unparsed`), so a judge that drifts out of format
is seen, never rewarded.
"""

from __future__ import annotations

import re
from typing import Any

JUDGE_INSTRUCTION = (
    "You grade a response against a reference. Reply with the line 'Score: N' last, N an integer "
    "from 0 (wrong) to 10 (fully right)."
)
_SCORE_LINE = re.compile(r"Score:\s*(\d+)")
MAX_SCORE = 10


def judge_messages(question: str, reference: str, response: str) -> list[dict[str, Any]]:
    """The judge's conversation for one response."""
    text = f"Question: {question}\nReference: {reference}\nResponse: {response}"
    return [{"role": "system", "content": JUDGE_INSTRUCTION}, {"role": "user", "content": text}]


def parse_verdict(reply: str) -> float | None:
    """The judge's score in [0, 1] (N / 10), or None when the reply is out of format."""
    if not isinstance(reply, str):
        return None
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    if not lines or sum(bool(_SCORE_LINE.search(line)) for line in lines) != 1:
        return None
    last = _SCORE_LINE.fullmatch(lines[-1])
    if last is None or int(last.group(1)) > MAX_SCORE:
        return None
    return int(last.group(1)) / MAX_SCORE
