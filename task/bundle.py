"""The bundled task, built once per seed: dataset, tokenizer, tiny captioner and reasoner.

A cache directory holds one finished build per seed. A build is written into a private
temporary folder and renamed into place only after its `COMPLETE` marker is written, so a
cut-off or concurrent build never leaves (or lets anyone read) a half cache.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from task.checkpoints import build_tiny_captioner, build_tiny_reasoner
from task.dataset import DatasetFiles, read_records, write_bundled_dataset
from serve.reasoner_prompt import reasoner_messages
from task.scenes import describe, random_scene
from task.tokenizer import DEFAULT_SYSTEM_PROMPT, build_tokenizer
from vlm.caption_prompt import caption_messages

COMPLETE_MARKER = "COMPLETE"
# How many random scenes' captions the tokenizer sees beside the dataset's questions.
_CORPUS_CAPTIONS = 2000
# Room for the prompts' fixed wording as whole words too, not just the task's vocabulary:
# shorter prompts are what keep the tiny models fast on a CPU.
_VOCAB_SIZE = 512


@dataclass(frozen=True)
class BundledTask:
    """Paths of one built bundled task."""

    root: Path
    train_file: Path
    eval_file: Path
    captioner: Path
    reasoner: Path


def _layout(root: Path) -> BundledTask:
    data = root / "data"
    return BundledTask(
        root=root,
        train_file=data / "train.jsonl",
        eval_file=data / "eval.jsonl",
        captioner=root / "captioner",
        reasoner=root / "reasoner",
    )


def _message_texts(messages: list[dict]) -> Iterator[str]:
    for message in messages:
        yield message["role"]
        content = message["content"]
        if isinstance(content, str):
            yield content
        else:
            yield from (part["text"] for part in content if part["type"] == "text")


def _tokenizer_corpus(files: DatasetFiles, seed: int) -> list[str]:
    """Every kind of text the two models will read or write, without the special tokens."""
    rng = random.Random(f"bundled-corpus/{seed}")
    questions = [record.question for path in (files.train, files.eval) for record in read_records(path)]
    captions = [describe(scene) for scene in (random_scene(rng) for _ in range(_CORPUS_CAPTIONS))]
    corpus = [*questions, *captions]
    # Every prompt repeats the fixed instructions, so they weigh as much as the questions do:
    # short prompts are what keep the tiny models fast.
    for question, caption in zip(questions, itertools.cycle(captions)):
        corpus.extend([DEFAULT_SYSTEM_PROMPT, "system", "assistant"])
        corpus.extend(_message_texts(caption_messages(question)))
        corpus.extend(_message_texts(reasoner_messages(caption, question)))
    for count in range(10):
        corpus.append(f"The description lists {count} matching objects. The answer is \\boxed{{{count}}}.")
    corpus.append("The description does not say, so I cannot tell. \\boxed{cannot tell}")
    return corpus


def _build(root: Path, seed: int, num_train: int, num_eval: int) -> None:
    log = logging.getLogger(__name__)
    layout = _layout(root)
    started = time.perf_counter()
    files = write_bundled_dataset(layout.train_file.parent, num_train, num_eval, seed)
    log.info("bundled task: wrote %d train / %d eval records under %s", num_train, num_eval, files.train.parent)
    tokenizer = build_tokenizer(_tokenizer_corpus(files, seed), vocab_size=_VOCAB_SIZE)
    log.info("bundled task: trained a %d-token BPE tokenizer", len(tokenizer))
    build_tiny_captioner(layout.captioner, tokenizer, seed)
    build_tiny_reasoner(layout.reasoner, tokenizer, seed)
    log.info("bundled task: built tiny captioner and reasoner in %.1f s", time.perf_counter() - started)
    params = {"seed": seed, "num_train": num_train, "num_eval": num_eval}
    # Written last: its presence is the promise that everything above is on disk.
    (root / COMPLETE_MARKER).write_text(json.dumps(params))


def _check_cached(root: Path, seed: int, num_train: int, num_eval: int) -> BundledTask:
    built = json.loads((root / COMPLETE_MARKER).read_text())
    wanted = {"seed": seed, "num_train": num_train, "num_eval": num_eval}
    if built != wanted:
        raise ValueError(
            f"{root} holds a bundled task built with {built}, not {wanted}; remove it or use another cache_dir"
        )
    return _layout(root)


def ensure_bundled_task(cache_dir: Path, seed: int = 0, num_train: int = 2048, num_eval: int = 256) -> BundledTask:
    """Build the bundled task into `cache_dir/seed<seed>` unless a finished build is already there."""
    cache_dir = Path(cache_dir)
    root = cache_dir / f"seed{seed}"
    if (root / COMPLETE_MARKER).exists():
        return _check_cached(root, seed, num_train, num_eval)
    if root.exists():
        raise ValueError(f"{root} exists but has no {COMPLETE_MARKER} marker; it was not built by us, remove it")
    cache_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger(__name__).info("bundled task: building %s (first use)", root)
    staging = Path(tempfile.mkdtemp(prefix=f".seed{seed}-building-", dir=cache_dir))
    try:
        _build(staging, seed, num_train, num_eval)
        try:
            os.rename(staging, root)
        except OSError:
            # Another process finished the same build first; its copy is as good as ours.
            if not (root / COMPLETE_MARKER).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _check_cached(root, seed, num_train, num_eval)
