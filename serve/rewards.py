"""A caption group's rewards: the configured kinds, mixed by weight, less the shaping terms.

Kinds (`reward.kind`, or several by `reward.weights`):
- verifiable (RACRO): the reasoner answers the prompt's question from the caption; each answer
  graded against the gold answer (serve/grading.py); the kind's score is their mean.
- mcq (CapRL): the reasoner answers multiple-choice questions about the image from the caption.
  A group's captions are all asked the same `reward.mcq.questions_per_caption` questions, drawn
  from the record's question set with the group's seed, each with its options shuffled and
  relabelled and a "cannot be answered from the caption" option added last: GRPO then compares
  captions on equal questions. The score is the share answered right; an answer counts only if
  it chooses exactly the right option (`serve.options.chosen_option`: no hedges, negations or letters outside).

- judge (Perception-R1): an LLM (the pool's reasoner model, or an OpenAI-compatible endpoint)
  grades each answer to the prompt's question against the gold answer, or the caption itself
  against the record's reference facts (`reward.judge.target`); the score is its mean grade,
  a reply out of format counting 0 (serve/judge.py).

Shaping terms (`reward.shaping`, all off by default) are subtracted from the mix: a length budget
(CapRL), an n-gram repetition penalty (Perception-R1), a format pattern, matched under a time
bound (`matches_format`). An empty caption gets no reasoner call and scores 0 less the shaping
terms: it pays the format penalty when "" does not match the pattern, as a wrong one-token
caption does (emptiness must not be the cheaper failure); its repetition term is 0 (no words),
and its length term is 0 unless its whitespace ran past the length budget.

When the reasoner is the policy (policy.role=reasoner), the answers come from it, not from the
pool: each answer is graded (verifiable) and/or judged against the gold answer, and the shaping
terms apply to the answer's text (`score_answer_groups`).
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import regex

from configs.schema import RewardConfig, ShapingConfig
from serve.grading import candidate_answer, caption_grade, grade
from serve.judge import judge_messages, parse_verdict
from serve.options import ALL_LETTERS, chosen_option
from wire.scoring import AnswerScoreRequest, MCQuestion, ScoreRequest, ScoreResult, multiple_choice_text

log = logging.getLogger(__name__)

# The policy writes the text the operator's format pattern runs on, and a pattern that can
# backtrack catastrophically would hold the replica (one with nested quantifiers ran for minutes
# under Python's re on an 81-character caption; (a|aa)+$ on 60 a's and a b tries 2.5e12 ways).
# The `regex` package bounds a match's time and releases the GIL while it runs; a sane pattern
# matches a caption in microseconds. A match past the bound counts as out of format: the caption
# pays the penalty, the pool counts it (`rollout/format_timeouts`), and the pattern is logged once.
FORMAT_MATCH_TIMEOUT_S = 0.05

# (caption, question) prompts and k -> k answers per prompt: the reasoner engine's `answer`.
AnswerFn = Callable[[list[tuple[str, str]], int], list[list[str]]]
# Conversations -> one reply each: the judge's engine.
JudgeFn = Callable[[list[list[dict]]], list[str]]


@dataclass(frozen=True)
class McqAsk:
    """One multiple-choice question as the reasoner reads it."""

    text: str  # the question, its lettered options, and the instruction to answer with a letter
    letters: str
    choices: tuple[str, ...]
    gold: str  # the right option's letter


def mcq_asks(questions: Sequence[MCQuestion], count: int, seed: int, cannot_answer: str) -> list[McqAsk]:
    """`count` of `questions` (all of them if fewer), each with its options shuffled and the
    `cannot_answer` option last; the same `seed` gives the same questions, options and letters."""
    rng = random.Random(f"mcq/{seed}")
    asks = []
    for question in rng.sample(list(questions), min(count, len(questions))):
        order = list(range(len(question.options)))
        rng.shuffle(order)
        choices = (*(question.options[i] for i in order), cannot_answer)
        if len(choices) > len(ALL_LETTERS):
            raise ValueError(
                f"{len(choices)} options (with the cannot-answer one) in {question.question!r}: at most "
                f"{len(ALL_LETTERS)}"
            )
        letters = ALL_LETTERS[: len(choices)]
        text = multiple_choice_text(question.question, letters, choices)
        asks.append(McqAsk(text, letters, choices, letters[order.index(question.answer)]))
    return asks


def mcq_correct(reply: str, ask: McqAsk) -> bool:
    answer = candidate_answer(reply)
    return answer is not None and chosen_option(answer, ask.letters, ask.choices) == ask.gold


def repeated_ngram_share(text: str, n: int) -> float:
    """The share of the text's word n-grams that repeat an earlier one (0 without any n-gram)."""
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams) if grams else 0.0


def matches_format(text: str, pattern: str) -> bool | None:
    """Whether `text` matches `pattern` as a whole (`.` matching newlines too); None when the match
    ran past FORMAT_MATCH_TIMEOUT_S (out of format)."""
    try:
        return regex.fullmatch(pattern, text, regex.DOTALL, timeout=FORMAT_MATCH_TIMEOUT_S, concurrent=True) is not None
    except TimeoutError:
        _warn_slow_pattern(pattern, len(text))
        return None


@functools.lru_cache(maxsize=16)
def _warn_slow_pattern(pattern: str, length: int) -> None:
    log.warning(
        "reward.shaping.format_pattern %r ran past %.2f s on a %d-character caption: counted as out of format "
        "(rollout/format_timeouts counts every such caption); the pattern backtracks catastrophically, rewrite it",
        pattern,
        FORMAT_MATCH_TIMEOUT_S,
        length,
    )


@dataclass(frozen=True)
class Shaping:
    """What the shaping terms take off one text's reward, and whether its format match timed out."""

    penalty: float
    format_timed_out: bool = False


def shaping_terms(text: str, tokens: int | None, shaping: ShapingConfig) -> Shaping:
    """The shaping terms of a caption (or answer); `tokens` None = length unknown (no length term)."""
    penalty = 0.0
    if shaping.length_budget and tokens is not None and tokens > shaping.length_budget:
        penalty += shaping.length_penalty * (tokens - shaping.length_budget) / shaping.length_budget
    if shaping.repetition_ngram:
        penalty += shaping.repetition_penalty * repeated_ngram_share(text, shaping.repetition_ngram)
    matched = matches_format(text.strip(), shaping.format_pattern) if shaping.format_pattern else True
    if not matched:
        penalty += shaping.format_penalty
    return Shaping(penalty, format_timed_out=matched is None)


def shaping_penalty(caption: str, tokens: int | None, shaping: ShapingConfig) -> float:
    """What the shaping terms take off a caption's reward (`shaping_terms`)."""
    return shaping_terms(caption, tokens, shaping).penalty


@dataclass
class _Caption:
    """One non-empty caption: its prompts to the reasoner, their answers, and the judge's verdicts."""

    request: ScoreRequest
    caption: str
    index: int  # in the group
    own_question: bool  # whether the first prompt is the prompt's own question
    asks: list[McqAsk]
    prompts: list[tuple[str, str]]
    replies: list[list[str]] = field(default_factory=list)
    verdicts: list[float | None] = field(default_factory=list)


def score_groups(
    requests: Sequence[ScoreRequest],
    answer: AnswerFn,
    k: int,
    reward: RewardConfig,
    latency_s: Callable[[], float],
    judge: JudgeFn | None = None,
) -> list[ScoreResult]:
    """Every request's rewards: one reasoner call for all of their prompts (k answers each), then,
    for the judge reward, one judge call for all that is judged."""
    mix = reward.mix()
    plans = [_plan(request, mix, reward) for request in requests]
    entries = [entry for plan in plans for entry in plan if entry is not None]
    answers = iter(answer([p for e in entries for p in e.prompts], k) if any(e.prompts for e in entries) else [])
    for entry in entries:
        entry.replies = [next(answers) for _ in entry.prompts]
    if "judge" in mix:
        if judge is None:
            raise ValueError("reward.kind=judge needs a judge")
        judged = [_judged(e, reward.judge.target) for e in entries]
        verdicts = iter(judge([c for conversations in judged for c in conversations]) if entries else [])
        for entry, conversations in zip(entries, judged):
            entry.verdicts = [parse_verdict(next(verdicts)) for _ in conversations]
    took = latency_s()
    return [_result(request, plan, mix, reward.shaping, took) for request, plan in zip(requests, plans)]


def _plan(request: ScoreRequest, mix: dict[str, float], reward: RewardConfig) -> list[_Caption | None]:
    """Each caption's prompts (None for an empty caption: it gets no call)."""
    if "mcq" in mix and not request.mc_questions:
        raise ValueError(
            "reward.kind=mcq: this prompt's record has no multiple-choice questions (records' `questions`)"
        )
    judges_captions = "judge" in mix and reward.judge.target == "caption"
    if judges_captions and not request.reference:
        raise ValueError(
            "reward.judge.target=caption: this prompt's record has no reference facts (records' `reference`)"
        )
    asks = (
        mcq_asks(request.mc_questions, reward.mcq.questions_per_caption, request.seed, reward.mcq.cannot_answer)
        if "mcq" in mix
        else []
    )
    # The prompt's own question is asked for the verifiable reward, and for a judge of answers.
    asks_question = "verifiable" in mix or ("judge" in mix and not judges_captions)
    plan = []
    for index, caption in enumerate(request.captions):
        if not caption.strip():
            plan.append(None)
            continue
        prompts = [(caption, request.question)] if asks_question else []
        plan.append(
            _Caption(request, caption, index, asks_question, asks, prompts + [(caption, ask.text) for ask in asks])
        )
    return plan


def _judged(entry: _Caption, target: str) -> list[list[dict]]:
    """The judge's conversations for one caption: each answer to the question, or the caption."""
    request = entry.request
    if target == "caption":
        return [judge_messages(request.question, request.reference, entry.caption)]
    return [judge_messages(request.question, request.gold_answer, reply) for reply in entry.replies[0]]


def _result(
    request: ScoreRequest, plan: list[_Caption | None], mix: dict[str, float], shaping: ShapingConfig, latency_s: float
) -> ScoreResult:
    rewards, kept, refused, unparsed = [], [], 0, 0
    shaped = [
        shaping_terms(caption, request.caption_tokens[index] if request.caption_tokens else None, shaping)
        for index, caption in enumerate(request.captions)
    ]
    for index, entry in enumerate(plan):
        if entry is None:
            # No reasoner call, but the shaping terms apply as to any caption (module doc).
            rewards.append(0.0 - shaped[index].penalty)
            kept.append(())
            continue
        score = 0.0
        replies = iter(entry.replies)
        if entry.own_question:
            own = next(replies)  # the answers to the prompt's own question
            if "verifiable" in mix:
                correct, refused_here = caption_grade(own, request.gold_answer, question=request.question)
                score += mix["verifiable"] * correct
                refused += refused_here
        if "mcq" in mix:
            right = [mcq_correct(a, ask) for ask, answers_to_it in zip(entry.asks, replies) for a in answers_to_it]
            score += mix["mcq"] * sum(right) / len(right)
        if "judge" in mix:
            score += mix["judge"] * sum(v or 0.0 for v in entry.verdicts) / len(entry.verdicts)
            unparsed += sum(v is None for v in entry.verdicts)
        rewards.append(score - shaped[entry.index].penalty)
        kept.append(tuple(a for answers_to_prompt in entry.replies for a in answers_to_prompt))
    return ScoreResult(
        tuple(rewards),
        tuple(kept),
        latency_s,
        answers_refused=refused,
        empty_captions=sum(entry is None for entry in plan),
        judge_unparsed=unparsed,
        format_timeouts=sum(s.format_timed_out for s in shaped),
    )


def score_answer_groups(
    requests: Sequence[AnswerScoreRequest],
    reward: RewardConfig,
    latency_s: Callable[[], float],
    judge: JudgeFn | None = None,
) -> list[ScoreResult]:
    """Every answer's reward (policy.role=reasoner): its grade against the gold answer and/or the
    judge's verdict on it (one judge call for all of them), mixed by weight, less the shaping terms."""
    mix = reward.mix()
    if "mcq" in mix or ("judge" in mix and reward.judge.target != "answer"):
        raise ValueError("the reasoner's answers are graded by reward.kind=verifiable and judge (target answer) only")
    verdicts: list[float | None] = []
    if "judge" in mix:
        if judge is None:
            raise ValueError("reward.kind=judge needs a judge")
        conversations = [judge_messages(r.question, r.gold_answer, a) for r in requests for a in r.answers]
        verdicts = [parse_verdict(reply) for reply in judge(conversations)]
    took = latency_s()
    results, judged = [], iter(verdicts)
    for request in requests:
        rewards, refused, unparsed, timeouts = [], 0, 0, 0
        for index, answer in enumerate(request.answers):
            score = 0.0
            if "verifiable" in mix:
                graded = grade(answer, request.gold_answer, question=request.question)
                score += mix["verifiable"] * graded.score
                refused += graded.refused is not None
            if "judge" in mix:
                verdict = next(judged)
                score += mix["judge"] * (verdict or 0.0)
                unparsed += verdict is None
            shaped = shaping_terms(
                answer, request.answer_tokens[index] if request.answer_tokens else None, reward.shaping
            )
            rewards.append(score - shaped.penalty)
            timeouts += shaped.format_timed_out
        nothing_more = tuple(() for _ in request.answers)  # the answers are the policy's own, already logged
        results.append(
            ScoreResult(
                tuple(rewards),
                nothing_more,
                took,
                answers_refused=refused,
                judge_unparsed=unparsed,
                format_timeouts=timeouts,
            )
        )
    return results
