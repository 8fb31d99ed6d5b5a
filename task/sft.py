"""Supervised fine-tuning of the tiny models: the loop both warm starts share.

A batch is prompts followed by targets; only target tokens are trained on. Prompts are
left-padded and targets right-padded, so every target starts in the same column.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

Example = TypeVar("Example")

IGNORE_INDEX = -100  # labels that transformers' loss skips


@dataclass
class SequenceBatch:
    """Prompt + target token ids, padded, with labels only on the targets."""

    input_ids: torch.Tensor  # [B, L] long
    attention_mask: torch.Tensor  # [B, L] long
    labels: torch.Tensor  # [B, L] long, IGNORE_INDEX outside the targets


def pack_sequences(prompts: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], pad_id: int) -> SequenceBatch:
    """Left-pad the prompts, right-pad the targets, label the targets."""
    if len(prompts) != len(targets) or not prompts:
        raise ValueError(f"need as many prompts as targets, and at least one (got {len(prompts)}, {len(targets)})")
    prompt_len = max(len(p) for p in prompts)
    target_len = max(len(t) for t in targets)
    size = (len(prompts), prompt_len + target_len)
    input_ids = torch.full(size, pad_id, dtype=torch.long)
    attention_mask = torch.zeros(size, dtype=torch.long)
    labels = torch.full(size, IGNORE_INDEX, dtype=torch.long)
    for row, (prompt, target) in enumerate(zip(prompts, targets)):
        start, end = prompt_len - len(prompt), prompt_len + len(target)
        input_ids[row, start:end] = torch.tensor([*prompt, *target], dtype=torch.long)
        attention_mask[row, start:end] = 1
        labels[row, prompt_len:end] = torch.tensor(list(target), dtype=torch.long)
    return SequenceBatch(input_ids, attention_mask, labels)


def length_bucketed(
    draw: Callable[[], Example],
    length: Callable[[Example], tuple[int, ...]],
    batch_size: int,
    rng: random.Random,
    pool_batches: int = 16,
) -> Iterator[list[Example]]:
    """Endless batches of drawn examples, each batch of similar length.

    A batch is as long as its longest prompt plus its longest target, so random batches of
    the tiny models' short, varied sequences are about a third padding. Drawing a pool of
    `pool_batches` batches, sorting it by length and cutting it up wastes far less; the
    batches leave in random order so training does not see a length trend.
    """
    while True:
        pool = sorted((draw() for _ in range(batch_size * pool_batches)), key=length)
        batches = [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
        rng.shuffle(batches)
        yield from batches


@dataclass(frozen=True)
class SFTSettings:
    steps: int
    lr: float
    batch_size: int = 32
    warmup_steps: int = 20
    grad_clip: float = 1.0
    log_every: int = 50
    # With a `good_enough` check: run it every this many steps and stop once it passes.
    check_every: int = 0


def _lr_factor(step: int, settings: SFTSettings) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def supervised_finetune(
    params: list[torch.nn.Parameter],
    next_loss: Callable[[int], torch.Tensor],
    settings: SFTSettings,
    name: str,
    good_enough: Callable[[], bool] | None = None,
) -> int:
    """Take up to `settings.steps` AdamW steps on `next_loss(step)`; returns the steps taken.

    Stops early once `good_enough()` passes (asked every `settings.check_every` steps), so
    `steps` bounds the work rather than fixing it. Logs progress, because a first build of
    the bundled task spends minutes here.
    """
    log = logging.getLogger(__name__)
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, settings))
    started, running = time.perf_counter(), 0.0
    for step in range(settings.steps):
        loss = next_loss(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
        optimizer.step()
        schedule.step()
        running += loss.item()
        if (step + 1) % settings.log_every == 0 or step + 1 == settings.steps:
            log.info(
                "warm start %s: step %d/%d loss %.4f (%.0f s)",
                name,
                step + 1,
                settings.steps,
                running / ((step % settings.log_every) + 1),
                time.perf_counter() - started,
            )
            running = 0.0
        checking = good_enough is not None and settings.check_every and (step + 1) % settings.check_every == 0
        if checking and good_enough():
            log.info("warm start %s: good enough after %d steps", name, step + 1)
            return step + 1
    return settings.steps
