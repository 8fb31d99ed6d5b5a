"""Reward kinds end to end on the bundled task: a run whose reward mixes the verifiable, the
multiple-choice and the judge kinds with a shaping term, checked against the reasoner's own
answers. The judge is the pool's own tiny reasoner, never taught the judge's format: its replies
fail closed, scoring 0, and the run counts them."""

from __future__ import annotations

import json

import pytest

from configs.load import load_config
from configs.schema import McqRewardConfig
from driver.inputs import resolve_inputs
from learner.rollout_log import read_rollouts
from records.vqa import read_records
from serve.grading import grade
from serve.rewards import mcq_asks, mcq_correct, repeated_ngram_share
from tests.run_files import consumed
from tests.tiny_task import TINY_TASK_OVERRIDES

pytestmark = pytest.mark.integration
QUESTIONS, PENALTY, JUDGE = 2, 0.1, 0.25


def test_each_caption_gets_the_mixed_reward_of_the_answers_it_got(tmp_path, tiny_cache, run_launch):
    task = [f"task.cache_dir={tiny_cache}", *TINY_TASK_OVERRIDES]
    args = [
        f"run_dir={tmp_path / 'run'}",
        *task,
        "learner.total_steps=2",
        "learner.groups_per_step=2",
        "rollout.group_size=4",
        "rollout.sampling.max_new_tokens=8",
        "eval.at_end=false",
        "reward.weights.verifiable=0.5",
        "reward.weights.mcq=0.5",
        f"reward.weights.judge={JUDGE}",
        f"reward.mcq.questions_per_caption={QUESTIONS}",
        "reward.shaping.repetition_ngram=1",
        f"reward.shaping.repetition_penalty={PENALTY}",
    ]
    code, out = run_launch(args).finish(timeout=600)
    assert code == 0, out[-3000:]
    records = {r.id: r for r in read_records(resolve_inputs(load_config(overrides=task)).train_file)}
    seeds = {(g[0], g[2]): g[1] for row in consumed(tmp_path / "run") for g in row["trained"]}  # stream positions
    groups = read_rollouts(tmp_path / "run")
    assert len(groups) == 4
    for group in groups:
        record = records[group["prompt_id"]]
        asks = mcq_asks(
            record.questions, QUESTIONS, seeds[(group["actor_id"], group["prompt_id"])], McqRewardConfig().cannot_answer
        )
        assert len(asks) == min(QUESTIONS, len(record.questions))
        for caption, answers, reward in zip(group["captions"], group["answers"], group["rewards"]):
            if not caption.strip():
                assert (answers, reward) == ([], 0.0)
                continue
            # One answer to the prompt's question, then one to each multiple-choice question.
            assert len(answers) == 1 + len(asks)
            verifiable = grade(answers[0], record.answer, question=record.question).score
            mcq = sum(mcq_correct(a, ask) for a, ask in zip(answers[1:], asks)) / len(asks)
            total = 0.5 + 0.5 + JUDGE  # the weights are scaled to sum to 1
            expected = (0.5 * verifiable + 0.5 * mcq) / total - PENALTY * repeated_ngram_share(caption, 1)
            # The judge's verdicts are not logged: its part lies between 0 and its scaled weight.
            assert expected - 1e-6 <= reward <= expected + JUDGE / total + 1e-6
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["faults_survived_by_kind"]["judge_unparsed"] > 0
