"""The learner on several ranks is the learner on one: one GRPO update of the same groups on 2
ranks (gloo, CPU) gives the parameters the same update gives on 1 rank, under ZeRO-1, 2 and 3.

Each rank is a process of its own, as in a run (spawned here, not Ray actors: the test is about
DeepSpeed and the learner's arithmetic). The groups are made up from the bundled task's prompts
with fixed completions and rewards: the update does not care where they came from, only that
every rank sees the same ones. The step's gradient is the token mean over the whole step on any
number of ranks (learner/update.py), so the results differ only by float summation order.
"""

from __future__ import annotations

import io
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.integration

GROUPS_PER_STEP = 4
GROUP_SIZE = 4
STAGES = (1, 2, 3)


def make_groups(captioner: str, records_file: str) -> list:
    """GROUPS_PER_STEP groups of the bundled task's first prompts with fixed completions."""
    from records.vqa import load_image, read_records
    from vlm.caption_prompt import encode_caption_prompt
    from vlm.processor import load_captioner_processor
    from wire.scored_group import (
        COUNTER_NAMES,
        ActorCounters,
        GroupTimings,
        ScoredGroup,
    )

    processor = load_captioner_processor(captioner)
    rng = np.random.default_rng(0)
    vocab = len(processor.tokenizer)
    groups = []
    for position, record in enumerate(read_records(Path(records_file))[:GROUPS_PER_STEP]):
        image = load_image(record, Path(records_file).parent)
        prompt = encode_caption_prompt(processor, record.question, image)
        png = io.BytesIO()
        image.save(png, format="PNG")
        lengths = rng.integers(3, 9, GROUP_SIZE)
        groups.append(
            ScoredGroup(
                group_id=f"g{position}",
                prompt_id=record.id,
                actor_id=0,
                prompt_position=position,
                prompt_token_ids=prompt.input_ids,
                image_png=png.getvalue(),
                completion_ids=tuple(rng.integers(10, vocab, n).astype(np.int32) for n in lengths),
                behaviour_logprobs=tuple(np.full(n, -3.0, dtype=np.float32) for n in lengths),
                token_versions=tuple(np.zeros(n, dtype=np.int32) for n in lengths),
                rewards=np.array([1, 0, 0, 1][:GROUP_SIZE], dtype=np.float32),
                answers=((),) * GROUP_SIZE,
                timings=GroupTimings(0.0, 0.0, 0.0),
                counters=ActorCounters(**dict.fromkeys(COUNTER_NAMES, 0)),
            )
        )
    return groups


def updates(rank: int, world: int, port: int, bundle: dict, out_dir: str) -> None:
    """In a process of its own, for ZeRO-1, 2 and 3 in turn: rank `rank` of `world` builds the
    learner afresh from the checkpoint and does one update on the groups; rank 0 saves the
    trainable parameters after it, gathered from every rank's shards. (One process for all three
    stages: starting one costs more than an update of the tiny model.)"""
    os.environ.update(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    from configs.load import load_config
    from configs.seeds import derived_seed
    from learner.distributed import gathered_weights, leave_process_group
    from learner.role import Collected, LearnerRank, LearnerSetup
    from vlm.processor import load_captioner_processor
    from vlm.sampling import caption_sampling_spec

    groups = make_groups(bundle["captioner"], bundle["train_file"])
    for stage in STAGES:
        config = load_config(
            overrides=[
                f"learner.num_ranks={world}",
                f"learner.zero_stage={stage}",
                f"learner.groups_per_step={GROUPS_PER_STEP}",
                "learner.lr=1e-3",
                "learner.rollout_log_every=0",
            ]
        )
        sampling = caption_sampling_spec(
            config.rollout.sampling, load_captioner_processor(bundle["captioner"]).tokenizer
        )
        setup = LearnerSetup(
            bundle["captioner"],
            str(Path(out_dir) / f"run-{world}-{stage}"),
            rank,
            world,
            derived_seed(0, "learner", rank),
            sampling,
            weight_receivers=1,
        )
        learner = LearnerRank(config.learner, setup)
        learner.setup_rank(("127.0.0.1", port))  # the process group is made once, then reused
        learner._step(Collected(groups, [], 0.0))
        weights = gathered_weights(learner.engine, trainable_only=True)
        if rank == 0:
            torch.save(weights, Path(out_dir) / f"weights-{world}-{stage}.pt")
        learner.close()
    leave_process_group()


def train_on(world: int, bundle: dict, out_dir: Path) -> None:
    from learner.distributed import free_port

    port = free_port()
    context = multiprocessing.get_context("spawn")
    ranks = [context.Process(target=updates, args=(r, world, port, bundle, str(out_dir))) for r in range(world)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(timeout=600)
    assert [p.exitcode for p in ranks] == [0] * world, f"a rank of {world} failed"


@pytest.fixture(scope="module")
def bundle(tiny_bundle) -> dict:
    """What the ranks' processes are given: plain paths."""
    return {"captioner": str(tiny_bundle.captioner), "train_file": str(tiny_bundle.train_file)}


@pytest.fixture(scope="module")
def trained(bundle, tmp_path_factory) -> Path:
    """Every stage's parameters after the update, on 1 rank and on 2."""
    out_dir = tmp_path_factory.mktemp("ranks")
    train_on(1, bundle, out_dir)
    train_on(2, bundle, out_dir)
    return out_dir


@pytest.mark.parametrize("stage", STAGES)
def test_one_update_on_two_ranks_equals_it_on_one(stage, bundle, trained):
    from transformers import AutoModelForImageTextToText

    initial = {
        n: p.detach() for n, p in AutoModelForImageTextToText.from_pretrained(bundle["captioner"]).named_parameters()
    }
    one, two = (torch.load(trained / f"weights-{world}-{stage}.pt") for world in (1, 2))
    assert one.keys() == two.keys() and one
    moved = max(float((one[n] - initial[n]).abs().max()) for n in one)
    assert moved > 1e-4  # the update did something (Adam's first step moves weights by ~lr = 1e-3)
    worst = max(float((one[n] - two[n]).abs().max()) for n in one)
    assert worst < 1e-5, f"ZeRO-{stage}: 2 ranks differ from 1 by up to {worst}"


def test_a_build_lock_left_by_a_killed_compile_is_removed_and_a_live_one_kept(tmp_path, monkeypatch):
    """A rank's start would otherwise wait forever on DeepSpeed's CPU op build lock of a dead process."""
    import time

    from learner.distributed import STALE_BUILD_LOCK_S, clear_stale_build_lock

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    lock = tmp_path / "deepspeed_shm_comm" / "lock"
    lock.parent.mkdir()
    lock.touch()  # a build going on now
    assert clear_stale_build_lock() is None and lock.exists()
    old = time.time() - STALE_BUILD_LOCK_S - 1
    os.utime(lock, (old, old))
    assert clear_stale_build_lock() == lock and not lock.exists()
    assert clear_stale_build_lock() is None  # none left
