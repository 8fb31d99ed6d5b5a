"""rollouts.jsonl: every caption group a learner step trained on, as text a person can read."""

from __future__ import annotations

import json
from pathlib import Path

from wire.scored_group import ScoredGroup

ROLLOUTS_FILE = "rollouts.jsonl"


class RolloutLog:
    """One JSON object per group: the step, the prompt, its captions with their rewards, the
    reasoner's answers and the policy version of each caption (its oldest token's)."""

    def __init__(self, run_dir: Path, tokenizer):
        self._file = (Path(run_dir) / ROLLOUTS_FILE).open("a", buffering=1)
        self._tokenizer = tokenizer

    def write(self, step: int, groups: list[ScoredGroup]) -> None:
        for group in groups:
            row = {
                "step": step,
                "group_id": group.group_id,
                "prompt_id": group.prompt_id,
                "actor_id": group.actor_id,
                "captions": [self._tokenizer.decode(ids, skip_special_tokens=True) for ids in group.completion_ids],
                "rewards": group.rewards.tolist(),
                "answers": [list(a) for a in group.answers],
                "policy_versions": group.sample_versions.tolist(),
            }
            self._file.write(json.dumps(row) + "\n")

    def close(self) -> None:
        self._file.close()


def read_rollouts(run_dir: Path) -> list[dict]:
    with (Path(run_dir) / ROLLOUTS_FILE).open() as lines:
        return [json.loads(line) for line in lines if line.strip()]
