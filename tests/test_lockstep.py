"""eta = 0 is synchronous on-policy training, exactly.

A whole run (`launch.py`, one actor, eta = 0) and a plain lock-step loop built here from the same
components (the actor's prompt stream and engine, the pool's reasoner engine and grader, the
learner's update) must train the same captioner: the same captions and rewards at every step,
and the same parameters at the end, within float tolerance. The loop generates a step's groups
with the current weights, scores them, updates, and hands the new weights to the engine; nothing
in it is asynchronous, so any difference is the pipeline using other weights or other samples
than synchronous training would.

The reasoner answers greedily, one request per batch, so its answers do not depend on which
requests Serve happened to batch together.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from learner.rollout_log import read_rollouts
from tests.test_launch import short_run

pytestmark = pytest.mark.integration

STEPS = 3
LOCK_STEP = [
    "seed=3",
    "rollout.num_actors=1",
    "learner.max_staleness=0",
    "serve.num_replicas=1",
    "serve.max_batch_size=1",
    "serve.temperature=0",
    "eval.at_end=false",
    # The tiny task's reasoner gets nothing right from the untrained captioner's
    # captions, and they all run to max_new_tokens (a length budget would cost each the
    # same): a format term on whether a caption has an inner space makes the rewards
    # differ, so the updates are not all zero.
    "reward.shaping.format_pattern=.* .*",
    "reward.shaping.format_penalty=0.5",
]


def _score(reasoner, config, prompt, samples):
    """What a replica of the pool computes for one request (greedy: no random stream involved)."""
    from serve.grading import caption_reward
    from serve.rewards import shaping_penalty
    from wire.scoring import ScoreResult

    record, serve = prompt.record, config.serve
    # One request is one group: its captions are answered as one batch, as a replica does.
    answers = reasoner.answer(
        [(s.text, record.question) for s in samples],
        k=serve.samples_per_caption,
        temperature=serve.temperature,
        max_new_tokens=serve.max_new_tokens,
    )
    rewards = tuple(
        caption_reward(a, record.answer) - shaping_penalty(s.text, len(s.token_ids), config.reward.shaping)
        for a, s in zip(answers, samples)
    )
    return ScoreResult(rewards=rewards, answers=tuple(tuple(a) for a in answers), latency_s=0.0)


def lock_step_loop(args: list[str], out: Path) -> None:
    """Train synchronously in this process; log each step's groups (rollouts.jsonl, as a run does)
    and save the final parameters."""
    from actors.rollout import RolloutActor, RolloutSetup
    from configs.load import load_config
    from configs.seeds import derived_seed
    from driver.inputs import resolve_inputs
    from learner.distributed import free_port, gathered_weights
    from learner.role import Collected, LearnerRank, LearnerSetup
    from learner.weight_publisher import weight_update
    from serve.reasoner_engines import make_reasoner
    from vlm.processor import load_captioner_processor
    from vlm.sampling import caption_sampling_spec
    from wire.weights import WeightSource

    torch.set_num_threads(1)
    config = load_config(None, args)
    inputs = resolve_inputs(config)
    sampling = caption_sampling_spec(config.rollout.sampling, load_captioner_processor(inputs.captioner).tokenizer)
    reasoner = make_reasoner(config.serve, inputs.reasoner, derived_seed(config.seed, "reasoner", 0))
    learner = LearnerRank(
        config.learner,
        LearnerSetup(
            policy=inputs.captioner,
            run_dir=str(out),
            rank=0,
            world_size=1,
            seed=derived_seed(config.seed, "learner", 0),
            sampling=sampling,
            weight_receivers=1,
        ),
    )
    learner.setup_rank(("127.0.0.1", free_port()))
    # Last: the transformers engine samples from torch's global generator, which it seeds when it
    # is built (the learner seeds it too); in the run each role has a process of its own.
    actor = RolloutActor(
        config.rollout,
        RolloutSetup(
            actor_id=0,
            num_actors=1,
            policy=inputs.captioner,
            sampling=sampling,
            records_file=inputs.train_file,
            replay_endpoints=(),
            weight_source=WeightSource("zmq", ()),
            reasoner_app="",
            seed=derived_seed(config.seed, "actor", 0),
        ),
    )
    actor.receiver = SimpleNamespace(rejected=0)  # no weight socket here: the loop hands weights over
    loop = asyncio.new_event_loop()
    prompts = actor._prompt_stream()
    for step in range(config.learner.total_steps):
        groups = []
        while len(groups) < config.learner.groups_per_step:
            calls = min(config.rollout.prompts_per_call, config.learner.groups_per_step - len(groups))
            batch = [next(prompts) for _ in range(calls)]
            generated = loop.run_until_complete(actor.engine.generate([p.request for p in batch], actor.sampling))
            groups += [
                actor._scored_group(p, s, _score(reasoner, config, p, s), 0.0, 0.0) for p, s in zip(batch, generated)
            ]
        learner.rollouts.write(step, groups)
        learner._step(Collected(groups, dropped=[], wait_s=0.0))
        update = weight_update(learner.version, gathered_weights(learner.engine, trainable_only=True))
        loop.run_until_complete(actor.engine.update_weights(update))
    torch.save({k: v.detach().cpu() for k, v in learner.engine.module.state_dict().items()}, out / "params.pt")


def test_eta_zero_trains_exactly_like_a_lock_step_loop(tmp_path, tiny_cache, run_launch):
    args = [*short_run(tmp_path, tiny_cache, steps=STEPS), *LOCK_STEP]
    code, out = run_launch(args).finish(timeout=600)
    assert code == 0, out[-3000:]

    reference = tmp_path / "lock-step"
    reference.mkdir()
    # A process of its own: the loop joins a torch.distributed group and builds a DeepSpeed engine.
    child = multiprocessing.get_context("spawn").Process(target=lock_step_loop, args=(args, reference))
    child.start()
    child.join(timeout=600)
    assert child.exitcode == 0

    # The same groups, step by step: prompts, captions, the reasoner's answers, rewards, versions.
    def groups(run_dir: Path) -> list[list[str]]:
        keys = ("step", "prompt_id", "captions", "answers", "rewards", "policy_versions")
        return sorted(json.dumps([g[k] for k in keys]) for g in read_rollouts(run_dir))

    pipeline, lock_step = groups(tmp_path / "run"), groups(reference)
    assert len(pipeline) == STEPS * 2  # learner.groups_per_step in short_run
    assert pipeline == lock_step

    from transformers import AutoModelForImageTextToText

    trained = AutoModelForImageTextToText.from_pretrained(tmp_path / "run" / "captioner").state_dict()
    expected = torch.load(reference / "params.pt")
    assert trained.keys() == expected.keys()
    # The pipeline may sum a step's groups in another order (arrival): rounding only.
    worst = max(float((trained[k].float() - expected[k].float()).abs().max()) for k in expected)
    assert worst < 1e-5, worst
    # ...and the run did train: Adam moves a parameter by up to about lr per step, and over
    # STEPS steps some parameter moved by more than one step's worth, far beyond that tolerance.
    from configs.load import load_config
    from driver.inputs import resolve_inputs

    config = load_config(None, args)
    initial = AutoModelForImageTextToText.from_pretrained(resolve_inputs(config).captioner).state_dict()
    assert max(float((initial[k] - expected[k]).abs().max()) for k in expected) > config.learner.lr
