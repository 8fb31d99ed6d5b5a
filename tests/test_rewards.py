"""Reward kinds and shaping terms (serve/rewards.py), hand-worked; the reasoner is a stand-in
function here (the pool's real engine scores them in tests/test_reward_kinds.py)."""

from __future__ import annotations

import pytest

from configs.schema import JudgeRewardConfig, McqRewardConfig, RewardConfig, ShapingConfig
from serve.rewards import (
    mcq_asks,
    mcq_correct,
    repeated_ngram_share,
    score_answer_groups,
    score_groups,
    shaping_penalty,
)
from wire.scoring import AnswerScoreRequest, MCQuestion, ScoreRequest

CIRCLES = MCQuestion("How many circles are there?", ("1", "2", "3"), 2)
SQUARES = MCQuestion("How many squares are there?", ("0", "4"), 0)
CANNOT = "It cannot be answered from the caption."


def test_asks_shuffle_options_add_the_cannot_answer_one_and_keep_the_right_letter():
    (ask,) = mcq_asks([CIRCLES, SQUARES], 1, seed=5, cannot_answer=CANNOT)
    question = CIRCLES if ask.text.startswith(CIRCLES.question) else SQUARES
    assert ask.letters == "ABCD"[: len(question.options) + 1] and ask.choices[-1] == CANNOT
    assert sorted(ask.choices[:-1]) == sorted(question.options)
    assert ask.choices[ask.letters.index(ask.gold)] == question.options[question.answer]
    assert ask.text.endswith("Answer with the option's letter.")
    assert mcq_asks([CIRCLES, SQUARES], 1, seed=5, cannot_answer=CANNOT) == [ask]  # seeded


def test_asks_take_every_question_when_asked_for_more_and_shuffle_by_seed():
    assert len(mcq_asks([CIRCLES, SQUARES], 5, seed=0, cannot_answer=CANNOT)) == 2
    # The right option ("3") lands on each of the three option letters for some seed, never on D.
    golds = {mcq_asks([CIRCLES], 1, seed=s, cannot_answer=CANNOT)[0].gold for s in range(60)}
    assert golds == {"A", "B", "C"}


def test_an_mcq_answer_counts_only_if_it_chooses_the_right_option_alone():
    (ask,) = mcq_asks([CIRCLES], 1, seed=1, cannot_answer=CANNOT)
    other = next(letter for letter in ask.letters if letter != ask.gold)
    assert mcq_correct(f"\\boxed{{{ask.gold}}}", ask)
    assert mcq_correct("\\boxed{3}", ask)  # the right option's text
    assert not mcq_correct(f"\\boxed{{{ask.gold} and {other}}}", ask)
    assert not mcq_correct(f"\\boxed{{{other}}}", ask)
    assert not mcq_correct("\\boxed{J}", ask)  # no such option


def test_repeated_ngram_share():
    # Bigrams: (a b) (b a) (a b) (b a) (a b): the last three repeat earlier ones.
    assert repeated_ngram_share("a b a b a b", 2) == 0.6
    assert repeated_ngram_share("a a b", 1) == pytest.approx(1 / 3)
    assert repeated_ngram_share("a", 2) == 0.0


def test_shaping_terms_add_up():
    shaping = ShapingConfig(
        length_budget=10,
        length_penalty=0.5,
        repetition_ngram=2,
        repetition_penalty=1.0,
        format_pattern=r".*\.",
        format_penalty=0.25,
    )
    # 20 tokens: 10 over a budget of 10 -> 0.5 * 10 / 10; repeats 0.6; no final period -> 0.25.
    assert shaping_penalty("a b a b a b", 20, shaping) == pytest.approx(0.5 + 0.6 + 0.25)
    assert shaping_penalty("a b c.", 8, shaping) == 0.0
    assert shaping_penalty("a b c.", None, shaping) == 0.0  # length unknown: no length term
    assert shaping_penalty("a b a b a b", 20, ShapingConfig()) == 0.0  # all off by default


def fake_reasoner(asks_by_text: dict, wrong_mcq: set[str]):
    """Answers the verifiable question "2", and each multiple-choice question with its right
    letter unless its question is in `wrong_mcq`."""

    def answer(prompts: list[tuple[str, str]], k: int) -> list[list[str]]:
        replies = []
        for _, question in prompts:
            ask = asks_by_text.get(question)
            if ask is None:
                replies.append(["\\boxed{2}"] * k)
            else:
                right = not any(question.startswith(q) for q in wrong_mcq)
                letter = ask.gold if right else next(x for x in ask.letters if x != ask.gold)
                replies.append([f"\\boxed{{{letter}}}"] * k)
        return replies

    return answer


def test_a_mix_of_kinds_weighs_each_and_subtracts_shaping():
    reward = RewardConfig(
        weights={"verifiable": 0.5, "mcq": 0.5},
        mcq=McqRewardConfig(questions_per_caption=2, cannot_answer=CANNOT),
        shaping=ShapingConfig(length_budget=4, length_penalty=1.0),
    )
    request = ScoreRequest(
        "How many?", "2", ("two circles", "  ", "two circles"), (CIRCLES, SQUARES), caption_tokens=(4, 0, 6), seed=3
    )
    asks = {a.text: a for a in mcq_asks(request.mc_questions, 2, 3, CANNOT)}
    (result,) = score_groups([request], fake_reasoner(asks, {SQUARES.question}), 2, reward, lambda: 0.5)
    # verifiable 1.0 and mcq 1/2 (circles right, squares wrong): 0.5 * 1 + 0.5 * 0.5 = 0.75;
    # the third caption is 2 tokens over a budget of 4: 1.0 * 2 / 4 = 0.5 less.
    assert result.rewards == (0.75, 0.0, 0.25)
    assert result.empty_captions == 1 and result.latency_s == 0.5
    assert len(result.answers[0]) == 2 * 3 and result.answers[1] == ()  # k answers to each of 3 prompts


def test_the_mcq_kind_alone_and_without_questions():
    reward = RewardConfig(kind="mcq", mcq=McqRewardConfig(questions_per_caption=1, cannot_answer=CANNOT))
    request = ScoreRequest("How many?", "2", ("two circles",), (CIRCLES,), seed=0)
    asks = {a.text: a for a in mcq_asks(request.mc_questions, 1, 0, CANNOT)}
    assert score_groups([request], fake_reasoner(asks, set()), 1, reward, lambda: 0.0)[0].rewards == (1.0,)
    with pytest.raises(ValueError, match="no multiple-choice questions"):
        score_groups([ScoreRequest("How many?", "2", ("x",))], fake_reasoner({}, set()), 1, reward, lambda: 0.0)


def test_reward_config_checks_its_kinds():
    with pytest.raises(ValueError, match="reward.kind must be one of"):
        RewardConfig(kind="vibes")
    with pytest.raises(ValueError, match=r"unknown kind\(s\) \['vibes'\]"):
        RewardConfig(weights={"vibes": 1.0})
    assert RewardConfig(weights={"verifiable": 1.0, "mcq": 0.0}).mix() == {"verifiable": 1.0}


def test_an_empty_caption_scores_zero_without_a_reasoner_call():
    request = ScoreRequest(question="How many?", gold_answer="2", captions=("two dots", "  ", "\\boxed{" + "(" * 20))
    asked = []

    def answer(prompts, k):
        asked.extend(prompts)
        return [["\\boxed{2}", "\\boxed{3}"], ["\\boxed{" + "(" * 20 + "2" + ")" * 20 + "}", "\\boxed{2}"]]

    (result,) = score_groups([request], answer, 2, RewardConfig(), lambda: 0.5)
    assert [caption for caption, _ in asked] == ["two dots", "\\boxed{" + "(" * 20]  # not the empty one
    # Each non-empty caption: one of two answers right; the too-deeply nested one is refused, wrong.
    assert result.rewards == (0.5, 0.0, 0.5)
    assert result.answers[1] == ()
    assert (result.empty_captions, result.answers_refused) == (1, 1)


def test_scoring_over_http_takes_questions_token_counts_and_seed():
    from wire.scoring import score_request_from_json

    body = {
        "question": "q",
        "answer": "1",
        "captions": ["a", "b"],
        "caption_tokens": [3, 4],
        "seed": 9,
        "questions": [{"question": "How many?", "options": ["1", "2"], "answer": 1}],
    }
    request = score_request_from_json(body)
    assert (
        request.mc_questions == (MCQuestion("How many?", ("1", "2"), 1),)
        and request.caption_tokens == (3, 4)
        and request.seed == 9
    )
    for bad, message in [
        ({"questions": [{"question": "x", "options": ["1", "2"], "answer": 2}]}, "a right one among them"),
        ({"questions": "x"}, "field 'questions' must be a list"),
        ({"caption_tokens": [1]}, "one token count per caption"),
        ({"seed": "x"}, "'seed' must be an integer"),
    ]:
        with pytest.raises(ValueError, match=message):
            score_request_from_json({**body, **bad})


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("Score: 7", 0.7),
        ("  Score: 10\n", 1.0),
        ("The response names the same count.\nScore: 9", 0.9),  # reasoning first, the score line last
        ("Score: 11", None),  # out of range
        ("score: 5", None),  # not the format asked for
        ("Score: 5\nScore: 6", None),  # two verdicts
        ("Score: 5 because it is close", None),
        ("Score: 4\nThat is all.", None),  # the score line must be last
        ("I would say 8", None),
        ("", None),
        ("Score: 0", 0.0),
        ("Score:10", 1.0),
        # Values outside 0..10 as written, however they are written: out of range, not an error.
        ("Score: " + "9" * 10_000, None),  # int() refuses strings past 4300 digits with ValueError
        ("Score: " + "0" * 10_000 + "7", None),  # 7 in value, but not written plainly
        ("Score: 100", None),
        ("Score: 07", None),
        ("Score: -3", None),
        ("Score: -0", None),
        ("Score: +5", None),
        ("Score: 7.5", None),
        ("Score: 1e1", None),
        ("Score: \uff17", None),  # a fullwidth 7: int() would read it, the format does not
        ("Score: -3\nScore: 4", None),  # a signed score is still a second verdict
    ],
)
def test_a_judge_reply_parses_only_in_the_strict_format(reply, score):
    from serve.judge import parse_verdict

    assert parse_verdict(reply) == score


def test_the_judge_grades_each_answer_and_an_unparsed_reply_scores_zero():
    seen = []

    def judge(conversations):
        seen.extend(conversations)
        # Right answers get 10, wrong ones 2; an answer saying "3" gets a reply out of format.
        return [
            "Score: 10"
            if "\\boxed{2}" in c[1]["content"]
            else "no idea"
            if "\\boxed{3}" in c[1]["content"]
            else "Score: 2"
            for c in conversations
        ]

    def answer(prompts, k):
        return [["\\boxed{2}", "\\boxed{3}"], ["\\boxed{4}", "\\boxed{2}"]][: len(prompts)]

    reward = RewardConfig(weights={"verifiable": 0.5, "judge": 0.5})
    request = ScoreRequest("How many?", "2", ("two dots", "four dots"))
    (result,) = score_groups([request], answer, 2, reward, lambda: 0.0, judge)
    # Caption 1: verifiable 1/2; judge (10 + unparsed 0) / 2 / 10 = 0.5. Caption 2: verifiable 1/2; judge (2 + 10)
    # / 20 = 0.6.
    assert result.rewards == pytest.approx((0.5 * 0.5 + 0.5 * 0.5, 0.5 * 0.5 + 0.5 * 0.6))
    assert result.judge_unparsed == 1 and len(seen) == 4
    assert "Reference: 2\n<response>\n\\boxed{2}\n</response>" in seen[0][1]["content"]


def test_a_judge_reply_out_of_range_fails_only_its_own_sample():
    # A judge that answers "Score: 8" to everything but one answer ("\\boxed{3}"), whose reply is
    # ten thousand digits: before, int() raised on it and the whole scoring batch failed.
    def judge(conversations):
        return ["Score: " + "9" * 10_000 if "\\boxed{3}" in c[1]["content"] else "Score: 8" for c in conversations]

    def answer(prompts, k):
        return [["\\boxed{2}", "\\boxed{3}"], ["\\boxed{2}", "\\boxed{2}"], ["\\boxed{4}", "\\boxed{2}"]][
            : len(prompts)
        ]

    reward = RewardConfig(kind="judge")
    requests = [ScoreRequest("How many?", "2", ("two dots", "2 dots")), ScoreRequest("How many?", "2", ("four dots",))]
    first, second = score_groups(requests, answer, 2, reward, lambda: 0.0, judge)
    # First group: caption 1's answers get 8 and the unparsed reply (0): (8 + 0) / 2 / 10 = 0.4;
    # caption 2's get 8 and 8: 0.8. Second group (another request of the same batch): 0.8.
    assert first.rewards == pytest.approx((0.4, 0.8)) and first.judge_unparsed == 1
    assert second.rewards == pytest.approx((0.8,)) and second.judge_unparsed == 0
    # The reasoner's own answers, judged in one batch: only the long reply's answer scores 0.
    answers = AnswerScoreRequest("How many?", "2", ("\\boxed{2}", "\\boxed{3}", "\\boxed{4}"))
    (result,) = score_answer_groups([answers], reward, lambda: 0.0, judge)
    assert result.rewards == pytest.approx((0.8, 0.0, 0.8)) and result.judge_unparsed == 1


def test_a_judge_of_captions_reads_the_reference_facts():
    reward = RewardConfig(kind="judge", judge=JudgeRewardConfig(target="caption"))
    request = ScoreRequest(
        "How many?", "2", ("a red circle",), reference="top left: a red circle. top right: a red circle."
    )
    seen = []

    def judge(conversations):
        seen.extend(conversations)
        return ["Score: 5"]

    (result,) = score_groups([request], lambda prompts, k: [], 1, reward, lambda: 0.0, judge)
    assert result.rewards == (0.5,) and result.answers == ((),)  # no reasoner call: the caption itself is judged
    assert seen[0][1]["content"].endswith(
        "Reference: top left: a red circle. top right: a red circle.\n<response>\na red circle\n</response>"
    )
    with pytest.raises(ValueError, match="no reference facts"):
        score_groups([ScoreRequest("How many?", "2", ("x",))], lambda prompts, k: [], 1, reward, lambda: 0.0, judge)


def test_mixed_weights_are_scaled_to_sum_to_one():
    # 0.5 + 0.5 + 0.25 = 1.25: each weight over it.
    mix = RewardConfig(weights={"verifiable": 0.5, "mcq": 0.5, "judge": 0.25}).mix()
    assert mix == pytest.approx({"verifiable": 0.4, "mcq": 0.4, "judge": 0.2})


def test_the_reasoners_own_answers_are_graded_judged_and_shaped():
    seen = []

    def judge(conversations):
        seen.extend(conversations)
        # The right answer gets 10, the wrong one 4, the empty one a reply out of format.
        return [
            "Score: 10" if "\\boxed{3}" in c[1]["content"] else "Score: 4" if "\\boxed" in c[1]["content"] else "dunno"
            for c in conversations
        ]

    reward = RewardConfig(
        weights={"verifiable": 3.0, "judge": 1.0}, shaping=ShapingConfig(length_budget=4, length_penalty=0.2)
    )
    request = AnswerScoreRequest(
        "How many dots?", "3", ("so \\boxed{3}", "\\boxed{5}", "no idea"), answer_tokens=(6, 2, 4)
    )
    (result,) = score_answer_groups([request], reward, lambda: 0.0, judge)
    # Weights 3/4 and 1/4. Right: 0.75 + 0.25 * 1.0, then 2 tokens over a budget of 4 cost 0.2 * 2 / 4 = 0.1.
    # Wrong: 0 + 0.25 * 0.4. No answer: 0 + 0 (unparsed, counted).
    assert result.rewards == pytest.approx((1.0 - 0.1, 0.1, 0.0))
    assert result.judge_unparsed == 1 and result.answers == ((), (), ())
    assert [c[1]["content"].endswith(f"<response>\n{a}\n</response>") for c, a in zip(seen, request.answers)] == [
        True
    ] * 3


def test_the_reasoners_answers_take_no_caption_reward():
    request = AnswerScoreRequest("How many?", "3", ("\\boxed{3}",))
    for reward in (RewardConfig(kind="mcq"), RewardConfig(kind="judge", judge=JudgeRewardConfig(target="caption"))):
        with pytest.raises(ValueError, match="verifiable and judge"):
            score_answer_groups([request], reward, lambda: 0.0, lambda conversations: [])
    (result,) = score_answer_groups([request], RewardConfig(), lambda: 0.0)
    assert result.rewards == (1.0,)
