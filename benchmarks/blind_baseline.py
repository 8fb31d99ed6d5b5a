"""What a reward pays a caption that says nothing, beside what it pays the faithful one.

A reward that can be gamed pays content-free captions: an empty one, a lone ".", a caption that
names only an option letter or a number. Each is scored as the reasoner pool scores captions
(serve/rewards.py `score_groups`, the run's reward configuration, its reasoner at the pool's
temperature) on the held-out records, beside the record's own reference description, the complete
faithful caption. The blind baseline is the best mean reward of the content-free captions.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from configs.schema import TrainConfig
from records.vqa import read_records
from serve.completion import CompletionParams
from serve.reasoner_engines import make_reasoner
from serve.rewards import score_groups
from wire.scoring import ScoreRequest

# Captions that say nothing about the image, by what they try.
CONTENT_FREE = {"empty": "", "dot": ".", "letter": "B", "number": "\\boxed{1}"}
_RECORDS = 128


@dataclass(frozen=True)
class CaptionRewards:
    """Mean reward (and its standard error over records) of each kind of caption."""

    mean: dict[str, float]
    stderr: dict[str, float]

    @property
    def blind(self) -> float:
        return max(self.mean[kind] for kind in CONTENT_FREE)


def caption_rewards(config: TrainConfig, reasoner: str, eval_file: str, records: int = _RECORDS) -> CaptionRewards:
    """Each content-free caption's mean reward, and the faithful caption's (`faithful`: the record's
    reference description), over the first `records` held-out records."""
    engine = make_reasoner(config.serve, reasoner, config.seed)
    kept = read_records(Path(eval_file))[:records]
    captions = {**CONTENT_FREE, "faithful": None}
    requests = [
        ScoreRequest(
            r.question,
            r.answer,
            tuple(c if c is not None else r.reference for c in captions.values()),
            mc_questions=r.questions,
            seed=index,
            reference=r.reference,
        )
        for index, r in enumerate(kept)
    ]

    def answer(prompts: list[tuple[str, str]], k: int) -> list[list[str]]:
        return engine.answer(
            prompts, k=k, temperature=config.serve.temperature, max_new_tokens=config.serve.max_new_tokens
        )

    def judge(conversations: list[list[dict]]) -> list[str]:
        params = CompletionParams(
            temperature=config.reward.judge.temperature, max_tokens=config.reward.judge.max_new_tokens
        )
        return [result.choices[0].text for result in engine.complete(conversations, params)]

    started = time.perf_counter()
    results = score_groups(
        requests, answer, config.serve.samples_per_caption, config.reward, lambda: time.perf_counter() - started, judge
    )
    by_kind = {kind: [result.rewards[i] for result in results] for i, kind in enumerate(captions)}
    return CaptionRewards(
        {kind: statistics.fmean(values) for kind, values in by_kind.items()},
        {kind: statistics.stdev(values) / len(values) ** 0.5 for kind, values in by_kind.items()},
    )
