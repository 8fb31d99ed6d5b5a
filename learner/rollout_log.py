"""rollouts.jsonl: every group a learner step trained on, as text a person can read."""

from __future__ import annotations

import json
from pathlib import Path

from wire.scored_group import ScoredGroup

ROLLOUTS_FILE = "rollouts.jsonl"


class RolloutLog:
    """One JSON object per group: the step, the prompt, its captions with their rewards, the
    reasoner's answers and the policy version of each caption (its oldest token's). When the
    reasoner is the policy (`role` "reasoner"), its prompt (the frozen captioner's caption in it)
    and its sampled answers, "completions", stand for the captions and the answers."""

    def __init__(self, run_dir: Path, tokenizer, role: str = "captioner"):
        self._file = (Path(run_dir) / ROLLOUTS_FILE).open("a", buffering=1)
        self._tokenizer = tokenizer
        self._role = role

    def write(self, step: int, groups: list[ScoredGroup]) -> None:
        for group in groups:
            completions = [self._tokenizer.decode(ids, skip_special_tokens=True) for ids in group.completion_ids]
            row = {"step": step, "group_id": group.group_id, "prompt_id": group.prompt_id, "actor_id": group.actor_id}
            if self._role == "reasoner":
                row.update(
                    prompt=self._tokenizer.decode(group.prompt_token_ids, skip_special_tokens=True),
                    completions=completions,
                )
            else:
                row.update(captions=completions, answers=[list(a) for a in group.answers])
            row.update(rewards=group.rewards.tolist(), policy_versions=group.sample_versions.tolist())
            self._file.write(json.dumps(row) + "\n")

    def close(self) -> None:
        self._file.close()


def read_rollouts(run_dir: Path) -> list[dict]:
    with (Path(run_dir) / ROLLOUTS_FILE).open() as lines:
        return [json.loads(line) for line in lines if line.strip()]
