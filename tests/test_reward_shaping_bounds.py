"""The shaping terms cannot be dodged or stalled by the policy's text (serve/rewards.py): a format
pattern runs under a time bound, and an empty caption pays the terms any caption pays."""

from __future__ import annotations

import logging

import pytest

from configs.schema import RewardConfig, ShapingConfig
from serve.rewards import FORMAT_MATCH_TIMEOUT_S, matches_format, score_groups, shaping_penalty
from wire.scoring import ScoreRequest

# (a|aa)+$ tries every way of splitting the a's into ones and twos before it fails on the "b":
# for 60 a's that is Fibonacci(61), about 2.5e12 ways. Python's re would run for hours.
CATASTROPHIC = r"(a|aa)+$"
STALLING_CAPTION = "a" * 60 + "b"


def test_a_catastrophic_pattern_is_cut_off_counted_and_the_caption_penalised(caplog):
    shaping = ShapingConfig(format_pattern=CATASTROPHIC, format_penalty=0.25)
    request = ScoreRequest("How many?", "2", (STALLING_CAPTION, "aaaa", STALLING_CAPTION))
    with caplog.at_level(logging.WARNING, logger="serve.rewards"):
        (result,) = score_groups(
            [request], lambda prompts, k: [["\\boxed{2}"]] * len(prompts), 1, RewardConfig(shaping=shaping), lambda: 0.0
        )
    # Right answers all; the two stalling captions pay the format penalty and are counted.
    assert result.rewards == (0.75, 1.0, 0.75) and result.format_timeouts == 2
    # Logged once for the pattern, not once per caption.
    assert caplog.text.count(f"ran past {FORMAT_MATCH_TIMEOUT_S:.2f} s on a 61-character caption") == 1
    # The same pattern on text it settles quickly: a match, and a plain mismatch.
    assert shaping_penalty("aaaa", None, shaping) == 0.0
    assert shaping_penalty("ab", None, shaping) == 0.25


def test_a_format_pattern_matches_the_whole_caption_across_lines():
    assert matches_format("one.\ntwo.", r".*\.")  # `.` crosses the newline
    assert not matches_format("one. two", r".*\.")  # the whole caption, not a prefix
    assert (
        shaping_penalty("  a b c.  ", None, ShapingConfig(format_pattern=r".*\.", format_penalty=0.5)) == 0.0
    )  # stripped first


def test_a_format_pattern_is_checked_by_the_engine_that_matches_it():
    with pytest.raises(ValueError, match=r"reward.shaping.format_pattern is not a regular expression: missing \)"):
        ShapingConfig(format_pattern="(", format_penalty=0.1)
    # `regex` reads Unicode properties, which `re` refused: the config takes what matching takes.
    shaping = ShapingConfig(format_pattern=r"\p{Lu}.*", format_penalty=0.1)
    assert (shaping_penalty("A red circle.", None, shaping), shaping_penalty("a red circle.", None, shaping)) == (
        0.0,
        0.1,
    )


def test_an_empty_caption_pays_the_shaping_terms_without_a_reasoner_call():
    shaping = ShapingConfig(format_pattern=r".*\.", format_penalty=0.25, length_budget=10, length_penalty=0.5)
    request = ScoreRequest("How many?", "2", ("two dots.", "", "   ", "two dots"), caption_tokens=(3, 0, 30, 2))
    asked = []

    def answer(prompts, k):
        asked.extend(prompts)
        return [["\\boxed{2}"] * k for _ in prompts]

    (result,) = score_groups([request], answer, 2, RewardConfig(shaping=shaping), lambda: 0.0)
    assert [caption for caption, _ in asked] == ["two dots.", "two dots"]  # the empty ones get no call
    # 1. Both answers right, a final period, 3 tokens: 1.0.
    # 2. Empty: 0, and "" has no final period: -0.25 (what the one-token caption "two" would pay).
    # 3. Whitespace only, but 30 tokens of it: 0.5 * (30 - 10) / 10 = 1.0 for the length, 0.25 for
    #    the format: -1.25. No words, so no repetition term could apply.
    # 4. Right, but no final period: 1.0 - 0.25.
    assert result.rewards == pytest.approx((1.0, -0.25, -1.25, 0.75))
    assert result.empty_captions == 2 and result.answers[1] == result.answers[2] == ()


def test_an_empty_caption_still_scores_zero_when_no_shaping_term_is_on():
    request = ScoreRequest("How many?", "2", ("", "two dots"))
    (result,) = score_groups([request], lambda prompts, k: [["\\boxed{2}"]], 1, RewardConfig(), lambda: 0.0)
    assert result.rewards == (0.0, 1.0)
