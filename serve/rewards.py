"""A caption group's rewards: the configured kinds, mixed by weight, less the shaping terms.

Kinds (`reward.kind`, or several by `reward.weights`):
- verifiable (RACRO): the reasoner answers the prompt's question from the caption; each answer
  graded against the gold answer (serve/grading.py); the kind's score is their mean.
- mcq (CapRL): the reasoner answers multiple-choice questions about the image from the caption.
  A group's captions are all asked the same `reward.mcq.questions_per_caption` questions, drawn
  from the record's question set with the group's seed, each with its options shuffled and
  relabelled and a "cannot be answered from the caption" option added last: GRPO then compares
  captions on equal questions. The score is the share answered right; an answer counts only if
  it chooses exactly the right option (`grading.chosen_option`: no hedges, no letters outside).

Shaping terms (`reward.shaping`, all off by default) are subtracted from the mix: a length budget
(CapRL), an n-gram repetition penalty (Perception-R1), a format pattern. An empty caption scores
0 with no reasoner call, whatever the configuration.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from configs.schema import RewardConfig, ShapingConfig
from serve.grading import ALL_LETTERS, candidate_answer, chosen_option, grade
from wire.scoring import MCQuestion, ScoreRequest, ScoreResult

# (caption, question) prompts and k -> k answers per prompt: the reasoner engine's `answer`.
AnswerFn = Callable[[list[tuple[str, str]], int], list[list[str]]]


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
            raise ValueError(f"{len(choices)} options (with the cannot-answer one) in {question.question!r}: at most {len(ALL_LETTERS)}")
        letters = ALL_LETTERS[: len(choices)]
        listed = "\n".join(f"({letter}) {choice}" for letter, choice in zip(letters, choices))
        text = f"{question.question}\n{listed}\nAnswer with the option's letter."
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


def shaping_penalty(caption: str, tokens: int | None, shaping: ShapingConfig) -> float:
    """What the shaping terms take off a caption's reward; `tokens` None = length unknown (no length term)."""
    penalty = 0.0
    if shaping.length_budget and tokens is not None and tokens > shaping.length_budget:
        penalty += shaping.length_penalty * (tokens - shaping.length_budget) / shaping.length_budget
    if shaping.repetition_ngram:
        penalty += shaping.repetition_penalty * repeated_ngram_share(caption, shaping.repetition_ngram)
    if shaping.format_pattern and not re.fullmatch(shaping.format_pattern, caption.strip(), re.DOTALL):
        penalty += shaping.format_penalty
    return penalty


@dataclass
class _Caption:
    """One non-empty caption's prompts to the reasoner, and where its answers go."""

    request: ScoreRequest
    caption: str
    asks: list[McqAsk]
    prompts: list[tuple[str, str]]


def score_groups(requests: Sequence[ScoreRequest], answer: AnswerFn, k: int, reward: RewardConfig, latency_s: Callable[[], float]) -> list[ScoreResult]:
    """Every request's rewards, with one reasoner call for all of their prompts (k answers each)."""
    mix = reward.mix()
    captions: list[list[_Caption | None]] = []
    for request in requests:
        if "mcq" in mix and not request.mc_questions:
            raise ValueError("reward.kind=mcq: this prompt's record has no multiple-choice questions (records' `questions`)")
        asks = mcq_asks(request.mc_questions, reward.mcq.questions_per_caption, request.seed, reward.mcq.cannot_answer) if "mcq" in mix else []
        row = []
        for caption in request.captions:
            if not caption.strip():
                row.append(None)
                continue
            prompts = [(caption, request.question)] if "verifiable" in mix else []
            row.append(_Caption(request, caption, asks, prompts + [(caption, ask.text) for ask in asks]))
        captions.append(row)
    prompts = [p for row in captions for c in row if c for p in c.prompts]
    answers = iter(answer(prompts, k) if prompts else [])
    took = latency_s()
    return [_result(request, row, answers, mix, reward.shaping, took) for request, row in zip(requests, captions)]


def _result(request: ScoreRequest, row: list, answers, mix: dict[str, float], shaping: ShapingConfig, latency_s: float) -> ScoreResult:
    rewards, kept, refused, empty = [], [], 0, 0
    for index, entry in enumerate(row):
        if entry is None:
            rewards.append(0.0)
            kept.append(())
            empty += 1
            continue
        replies = [next(answers) for _ in entry.prompts]
        score = 0.0
        if "verifiable" in mix:
            grades = [grade(a, request.gold_answer, question=request.question) for a in replies[0]]
            score += mix["verifiable"] * sum(g.score for g in grades) / len(grades)
            refused += sum(g.refused is not None for g in grades)
        if "mcq" in mix:
            asked = replies[1:] if "verifiable" in mix else replies
            right = [mcq_correct(a, ask) for ask, answers_to_it in zip(entry.asks, asked) for a in answers_to_it]
            score += mix["mcq"] * sum(right) / len(right)
        tokens = request.caption_tokens[index] if request.caption_tokens else None
        rewards.append(score - shaping_penalty(entry.caption, tokens, shaping))
        kept.append(tuple(a for answers_to_prompt in replies for a in answers_to_prompt))
    return ScoreResult(tuple(rewards), tuple(kept), latency_s, answers_refused=refused, empty_captions=empty)
