"""`python -m benchmarks.learner_update [--steps N] [--record] [key=value ...]`: the learner's update time per step
on the bundled captioner, before and after its two savings.

One learner step of the default run (8 groups of G = 8 captions, DeepSpeed ZeRO-1, fp32, one torch
thread as a learner rank has) on the bundled task's prompts and images, with captions of the
bundled policy's lengths (10 to 24 tokens; their tokens are drawn at random, which costs the
update the same). Variants, timed in turn each round so that drifting load hits all alike:

- before: the vision tower encodes each caption's copy of its group's image (G times a group),
  one group per forward and backward pass: the learner as it was;
- each group's image encoded once (`learner/shared_vision.py`), one group per pass;
- and with `learner.groups_per_micro_batch` 2, 4 and 8 groups per pass.

Prints the median seconds per step and the ratio to "before"; `--record` writes BENCHMARKS.md's
section.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from contextlib import nullcontext
from unittest import mock

import numpy as np
import torch

from benchmarks.report import machine, write_section
from configs.load import load_config

COMMAND = "python -m benchmarks.learner_update --record"
GROUPS, GROUP_SIZE = 8, 8
CAPTION_TOKENS = (10, 24)
# (label, image encoded once per group, groups per pass)
VARIANTS = (
    ("before: image per caption, 1 group per pass", False, 1),
    ("image once per group, 1 group per pass", True, 1),
    *((f"image once per group, {n} groups per pass", True, n) for n in (2, 4, 8)),
)


def make_groups(captioner: str, train_file: str) -> list:
    """GROUPS groups of the bundled task's first prompts, G captions each of the bundled lengths."""
    from pathlib import Path

    from records.vqa import load_image, read_records
    from vlm.caption_prompt import encode_caption_prompt
    from vlm.processor import load_captioner_processor
    from wire.scored_group import COUNTER_NAMES, ActorCounters, GroupTimings, ScoredGroup

    processor = load_captioner_processor(captioner)
    tokenizer = processor.tokenizer
    ordinary = np.setdiff1d(np.arange(len(tokenizer)), tokenizer.all_special_ids)  # no image pad, no end of turn
    rng = np.random.default_rng(0)
    groups = []
    for position, record in enumerate(read_records(Path(train_file))[:GROUPS]):
        image = load_image(record, Path(train_file).parent)
        png = io.BytesIO()
        image.save(png, format="PNG")
        lengths = rng.integers(CAPTION_TOKENS[0], CAPTION_TOKENS[1] + 1, GROUP_SIZE)
        completions = [rng.choice(ordinary, n).astype(np.int32) for n in lengths]
        groups.append(
            ScoredGroup(
                group_id=f"g{position}",
                prompt_id=record.id,
                actor_id=0,
                prompt_position=position,
                prompt_token_ids=encode_caption_prompt(processor, record.question, image).input_ids,
                image_png=png.getvalue(),
                completion_ids=tuple(completions),
                behaviour_logprobs=tuple(np.full(len(c), -3.0, np.float32) for c in completions),
                token_versions=tuple(np.zeros(len(c), np.int32) for c in completions),
                rewards=rng.integers(0, 2, GROUP_SIZE).astype(np.float32),
                answers=((),) * GROUP_SIZE,
                timings=GroupTimings(0.0, 0.0, 0.0),
                counters=ActorCounters(**dict.fromkeys(COUNTER_NAMES, 0)),
            )
        )
    return groups


class Variant:
    """One way of running the update: its own DeepSpeed engine (the passes per step differ)."""

    def __init__(self, captioner: str, groups: list, share_images: bool, per_pass: int):
        from configs.schema import LearnerConfig, SamplingConfig
        from learner.batching import group_batch, packed
        from learner.distributed import build_engine, micro_batches_per_step
        from learner.grpo import group_advantages
        from learner.policy_model import load_policy_model, load_policy_processor
        from vlm.sampling import caption_sampling_spec

        # A vanishing learning rate: every step does the same work on the same weights.
        self.config = LearnerConfig(groups_per_step=len(groups), groups_per_micro_batch=per_pass, lr=1e-12)
        processor, tokenizer = load_policy_processor("captioner", captioner)
        model = load_policy_model("captioner", captioner, "fp32", freeze_vision=True)
        self.engine = build_engine(model, self.config, micro_batches_per_step(self.config, 1), 1)
        advantages = group_advantages(torch.tensor(np.stack([g.rewards for g in groups])))
        each = [group_batch(g, processor, advantages[i], tokenizer.pad_token_id) for i, g in enumerate(groups)]
        self.batches = [packed(each[i : i + per_pass], tokenizer.pad_token_id) for i in range(0, len(each), per_pass)]
        self.spec = caption_sampling_spec(SamplingConfig(), tokenizer)
        self.share_images = share_images
        self.seconds: list[float] = []

    def step(self) -> None:
        from learner import shared_vision
        from learner.update import grpo_update

        # "before" hands the model each caption's copy of the patches, as the learner did.
        before = mock.patch.object(shared_vision, "_takes_encoder_outputs", lambda model_class: False)
        with nullcontext() if self.share_images else before:
            started = time.perf_counter()
            grpo_update(self.engine, None, self.batches, 0, self.config, self.spec)
            self.seconds.append(time.perf_counter() - started)


def table(variants: dict[str, Variant]) -> str:
    base = statistics.median(next(iter(variants.values())).seconds)
    lines = ["| update | s per step (median) | speed-up over before |", "|---|---|---|"]
    for label, variant in variants.items():
        median = statistics.median(variant.seconds)
        lines.append(f"| {label} | {median:.3f} | {base / median:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import os

    from driver.inputs import resolve_inputs
    from learner.distributed import RankInfo, free_port, init_process_group

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant (after one warm-up step)")
    parser.add_argument("--record", action="store_true", help="write the table into BENCHMARKS.md")
    parser.add_argument(
        "overrides", nargs="*", help="config overrides, e.g. task.seed=1 (the bundled task to build or use)"
    )
    args = parser.parse_args(argv)
    config = load_config(None, args.overrides)
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    torch.set_num_threads(1)
    inputs = resolve_inputs(config)
    groups = make_groups(inputs.captioner, inputs.train_file)
    init_process_group(RankInfo(0, 1, "127.0.0.1", free_port()))
    variants = {label: Variant(inputs.captioner, groups, share, per_pass) for label, share, per_pass in VARIANTS}
    for variant in variants.values():
        variant.step()
        variant.seconds.clear()  # warm-up
    for round_ in range(args.steps):
        for variant in variants.values():
            variant.step()
        print(f"round {round_ + 1}/{args.steps}", flush=True)
    result = table(variants)
    print(result)
    if args.record:
        where = f"{machine()}, 1 torch thread, {GROUPS} groups x G={GROUP_SIZE} per step"
        write_section("Learner update", COMMAND, where, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
