"""The bundled task, built once per seed: dataset, tokenizer, tiny captioner and reasoner.

A cache directory holds one finished build per seed. A build is written into a private
temporary folder and renamed into place only after its `COMPLETE` marker is written, so a
cut-off or concurrent build never leaves (or lets anyone read) a half cache.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from configs.schema import WarmStartConfig
from records.vqa import read_records
from serve.judge import JUDGE_INSTRUCTION
from task import shipped_store
from task.captioner_warm_start import (
    CaptionerPlan,
    QualityBar,
    caption_quality,
    warm_start_captioner,
)
from task.checkpoints import build_tiny_captioner, build_tiny_reasoner
from task.dataset import DatasetFiles, write_bundled_dataset
from task.direct_answers import random_direct_answer
from task.inference_examples import inference_accuracy, inference_check_example, random_inference_example
from task.judge_examples import (
    injected_caption_judge_example,
    injected_judge_example,
    random_caption_judge_example,
    random_judge_example,
)
from task.mcq_examples import mcq_accuracy, mcq_example, random_mcq_example
from task.reasoner_examples import ReasonerExample, random_example
from task.reasoner_warm_start import (
    AccuracyBar,
    PartialSnapshot,
    reasoner_accuracy,
    warm_start_reasoner,
)
from task.scenes import SceneObject, describe, random_question, random_scene
from task.sft import SFTSettings
from task.tokenizer import build_tokenizer
from vlm.caption_prompt import answer_messages, caption_messages
from vlm.reasoner_prompt import reasoner_messages

COMPLETE_MARKER = "COMPLETE"
QUALITY_FILE = shipped_store.QUALITY_FILE
# Bumped whenever the build's output changes for the same settings, so old caches are rebuilt.
BUILD_FORMAT = 18
# Held-out scenes the warm-start quality is measured on.
_QUALITY_SCENES = 256
# Scenes outside the dataset and the warm start that decide when the captioner may stop.
_CHECK_SCENES = 256
# One held-out injected judge example for this many check scenes, on top of the random ones.
_INJECTED_CHECK_EVERY = 8
# Images per vision-probe step: a vision-only step is cheap, and bigger batches settled faster.
_VISION_BATCH = 64
Scene = tuple[SceneObject, ...]
# How many random scenes' captions the tokenizer sees beside the dataset's questions.
_CORPUS_CAPTIONS = 2000
# Room for the prompts' fixed wording as whole words too, not just the task's vocabulary:
# shorter prompts are what keep the tiny models fast on a CPU.
_VOCAB_SIZE = 512
# torch threads during a build, whatever the machine has: CPU kernels split their sums by thread,
# so another count rounds differently and the warm start drifts elsewhere. (CPUs that take other
# kernel paths, e.g. AVX-512 against AVX2, still round differently: the quality bars, not
# bit-equality, make every build good enough.) Two threads spin-wait for each other on a machine
# whose cores are busy with other work: build on a quiet machine (docs/troubleshooting.md).
_BUILD_THREADS = 2


@dataclass(frozen=True)
class BundledTask:
    """Paths of one built bundled task."""

    root: Path
    train_file: Path
    eval_file: Path
    captioner: Path
    reasoner: Path
    # The reasoner at an early point of its warm start (task.bundled_reasoner=partial): weaker,
    # so runs that train the reasoner (policy.role=reasoner) have something to learn.
    partial_reasoner: Path


def _layout(root: Path) -> BundledTask:
    data = root / "data"
    return BundledTask(
        root=root,
        train_file=data / "train.jsonl",
        eval_file=data / "eval.jsonl",
        captioner=root / "captioner",
        reasoner=root / "reasoner",
        partial_reasoner=root / "reasoner_partial",
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
        corpus.extend(["system", "user", "assistant"])
        corpus.extend(_message_texts(caption_messages(question)))
        corpus.extend(_message_texts(reasoner_messages(caption, question)))
        # The judge's instruction too: weighed by its judge examples alone, a third of its words
        # stayed in pieces and it took about 90 tokens instead of 57.
        corpus.append(JUDGE_INSTRUCTION)
    # What the warm-started reasoner will read and write as a judge, and write as a reasoner.
    scenes = [random_scene(rng) for _ in range(_CORPUS_CAPTIONS)]
    corpus.extend(random_example(rng, scene).reply for scene in scenes)
    judged = [random_judge_example(rng, scene) for scene in scenes[: _CORPUS_CAPTIONS // 4]]
    judged += [
        random_caption_judge_example(rng, scene) for scene in scenes[_CORPUS_CAPTIONS // 4 : _CORPUS_CAPTIONS // 2]
    ]
    corpus.extend(text for example in judged for text in (*_message_texts(example.messages()), example.reply))
    # Multiple-choice prompts as the reward asks them (their options and fixed wording), and the
    # replies the reasoner learns to write: as many as the counting prompts above.
    asked = [random_mcq_example(rng, random_scene(rng)) for _ in questions]
    # The inference modes: the captioner's own answers (the direct mode, the tentative answer) and
    # the reasoner's prompts with options listed and a tentative answer, with their replies.
    direct = [random_direct_answer(rng, random_scene(rng)) for _ in questions[: len(questions) // 2]]
    corpus.extend(text for d in direct for text in (*_message_texts(answer_messages(d.text)), d.reply))
    inferred = [
        random_inference_example(rng, random_scene(rng), two_stage=True) for _ in questions[: len(questions) // 2]
    ]
    corpus.extend(text for example in inferred for text in (*_message_texts(example.messages()), example.reply))
    corpus.extend(text for example in asked for text in (*_message_texts(example.messages()), example.reply))
    return corpus


def _warm_start_scenes(files: DatasetFiles, seed: int, count: int) -> tuple[list[Scene], list[Scene]]:
    """`count` random training scenes and `_CHECK_SCENES` others to judge them by; none a dataset scene."""
    rng = random.Random(f"warm-start-scenes/{seed}")
    scenes: list[Scene] = []
    while len(scenes) < count:
        scene = random_scene(rng)
        if scene not in files.scenes:
            scenes.append(scene)
    seen = set(files.scenes) | set(scenes)
    check: list[Scene] = []
    while len(check) < _CHECK_SCENES:
        scene = random_scene(rng)
        if scene not in seen:
            check.append(scene)
            seen.add(scene)
    return scenes, check


def _warm_start(layout: BundledTask, files: DatasetFiles, seed: int, config: WarmStartConfig) -> dict:
    """Warm-start both tiny models in place; returns their quality on held-out scenes."""
    scenes, check = _warm_start_scenes(files, seed, config.num_scenes)
    plan = CaptionerPlan(
        vision=SFTSettings(steps=config.vision_steps, lr=config.vision_lr, batch_size=_VISION_BATCH, log_every=100),
        reading=SFTSettings(
            steps=config.reading_steps,
            lr=config.captioner_lr,
            batch_size=config.batch_size,
            check_every=config.check_every,
        ),
        stopping=SFTSettings(steps=config.stopping_steps, lr=config.captioner_lr, batch_size=config.batch_size),
        bar=QualityBar(check, config.captioner_min_precision, min_direct_accuracy=config.captioner_min_direct_accuracy),
        go_on_prob=config.go_on_prob,
        answer_share=config.answer_share,
    )
    warm_start_captioner(layout.captioner, scenes, plan, seed)
    answering = SFTSettings(
        steps=config.reasoner_steps, lr=config.reasoner_lr, batch_size=config.batch_size, check_every=config.check_every
    )
    check_rng = random.Random(f"reasoner-check/{seed}")
    check_examples = [ReasonerExample(describe(scene), random_question(check_rng, scene)) for scene in check]
    # Half the judging bar on answers, half on captions (some of either carry injections, some
    # captions invent objects, as in training); then, so that injections weigh in the bar
    # whatever those draws give, an injected answer or caption about each of the first eighth
    # of the check scenes (32 of 256).
    check_judged = [
        (random_judge_example if i % 2 else random_caption_judge_example)(check_rng, scene)
        for i, scene in enumerate(check)
    ]
    injected = [
        (injected_judge_example if i % 2 else injected_caption_judge_example)(check_rng, scene)
        for i, scene in enumerate(check[: len(check) // _INJECTED_CHECK_EVERY])
    ]
    check_asked = [mcq_example(check_rng, scene, describe(scene)) for scene in check]
    check_inferred = [inference_check_example(check_rng, scene) for scene in check]
    bar = AccuracyBar(
        check_examples, [*check_judged, *injected], check_asked, check_inferred, config.reasoner_min_accuracy
    )
    partial = PartialSnapshot(layout.partial_reasoner, config.partial_reasoner_accuracy)
    reasoner = warm_start_reasoner(layout.reasoner, scenes, answering, seed, bar, partial)
    if reasoner.partial_accuracy is None:  # it passed the bar at its first check: the snapshot is its first state
        shutil.copytree(layout.reasoner, layout.partial_reasoner)
    rng = random.Random(f"warm-start-quality/{seed}")
    held_out = rng.sample(sorted(files.scenes), min(_QUALITY_SCENES, len(files.scenes)))
    complete = [ReasonerExample(describe(scene), random_question(rng, scene)) for scene in held_out]
    asked = [mcq_example(rng, scene, describe(scene)) for scene in held_out]
    return {
        "captioner": asdict(caption_quality(layout.captioner, held_out, seed)),
        "reasoner_accuracy_on_complete_captions": reasoner_accuracy(layout.reasoner, complete),
        "reasoner_judge_accuracy": reasoner.judge_accuracy,
        "reasoner_mc_accuracy_on_complete_captions": mcq_accuracy(layout.reasoner, asked),
        "reasoner_inference_accuracy": inference_accuracy(
            layout.reasoner, [inference_check_example(rng, s) for s in held_out]
        ),
        "partial_reasoner_accuracy_on_complete_captions": reasoner_accuracy(layout.partial_reasoner, complete),
    }


def build_recipe(seed: int, num_train: int, num_eval: int, warm_start: WarmStartConfig) -> dict:
    """Everything a build depends on; a cached build with another recipe is rebuilt."""
    return {
        "format": BUILD_FORMAT,
        "seed": seed,
        "num_train": num_train,
        "num_eval": num_eval,
        "warm_start": asdict(warm_start),
    }


def _build(root: Path, recipe: dict, warm_start: WarmStartConfig) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(_BUILD_THREADS)
    try:
        _build_with_fixed_threads(root, recipe, warm_start)
    finally:
        torch.set_num_threads(threads)


def _build_with_fixed_threads(root: Path, recipe: dict, warm_start: WarmStartConfig) -> None:
    log = logging.getLogger(__name__)
    layout = _layout(root)
    seed = recipe["seed"]
    started = time.perf_counter()
    files = _write_data(layout, recipe)
    tokenizer = build_tokenizer(_tokenizer_corpus(files, seed), vocab_size=_VOCAB_SIZE)
    build_tiny_captioner(layout.captioner, tokenizer, seed)
    build_tiny_reasoner(layout.reasoner, tokenizer, seed)
    quality = _warm_start(layout, files, seed, warm_start)
    (root / QUALITY_FILE).write_text(json.dumps(quality, indent=2))
    log.info("bundled task: built in %.0f s; warm start %s", time.perf_counter() - started, quality)
    # Written last: its presence is the promise that everything above is on disk.
    (root / COMPLETE_MARKER).write_text(json.dumps(recipe))


def _write_data(layout: BundledTask, recipe: dict) -> DatasetFiles:
    files = write_bundled_dataset(layout.train_file.parent, recipe["num_train"], recipe["num_eval"], recipe["seed"])
    logging.getLogger(__name__).info(
        "bundled task: wrote %d train / %d eval records", recipe["num_train"], recipe["num_eval"]
    )
    return files


def _unpack(root: Path, recipe: dict, source: Path) -> None:
    """The shipped build of `recipe` (its models) with its dataset regenerated, at `root`."""
    _write_data(_layout(root), recipe)
    shipped_store.copy_models(source, root)
    (root / COMPLETE_MARKER).write_text(json.dumps(recipe))


def quality_gaps(fresh: dict, reference: dict) -> list[str]:
    """Where a build's warm-start quality (warm_start.json) falls below `reference`'s by more than
    sampling noise: three standard errors of a rate over the _QUALITY_SCENES held-out scenes."""
    gaps, measured = [], _flat(fresh)
    for name, want in _flat(reference).items():
        if want is None:  # not measured for the reference (a build without quality checks)
            continue
        got = measured.get(name)
        got = float("nan") if got is None else got
        slack = 3 * math.sqrt(max(want * (1 - want), 1 / _QUALITY_SCENES) / _QUALITY_SCENES)
        if not got >= want - slack:
            gaps.append(f"{name}: {got:.3f}, the shipped build {want:.3f} (noise {slack:.3f})")
    return gaps


def _flat(quality: dict) -> dict[str, float]:
    return {
        f"{key}.{k}" if isinstance(value, dict) else key: v
        for key, value in quality.items()
        for k, v in (value.items() if isinstance(value, dict) else [(None, value)])
    }


def _is_built(root: Path, recipe: dict) -> bool:
    marker = root / COMPLETE_MARKER
    return marker.exists() and json.loads(marker.read_text()) == recipe


def ensure_bundled_task(
    cache_dir: Path,
    seed: int,
    num_train: int,
    num_eval: int,
    warm_start: WarmStartConfig,
    rebuild: bool = False,
) -> BundledTask:
    """The bundled task in `cache_dir/seed<seed>`, made there first unless an identical build is
    cached: unpacked from the build shipped with the code when its recipe is this one
    (task/shipped_store.py), else built. A cached build made with other settings (or by an older version
    of this code) is replaced; `rebuild` builds afresh regardless.
    """
    recipe = build_recipe(seed, num_train, num_eval, warm_start)
    cache_dir = Path(cache_dir)
    root = cache_dir / f"seed{seed}"
    if _is_built(root, recipe) and not rebuild:
        return _layout(root)
    if root.exists() and not (root / COMPLETE_MARKER).exists():
        raise ValueError(f"{root} exists but has no {COMPLETE_MARKER} marker; it was not built by us, remove it")
    cache_dir.mkdir(parents=True, exist_ok=True)
    source = None if rebuild else shipped_store.shipped_root(recipe)
    log = logging.getLogger(__name__)
    if source is not None:
        log.info(
            "bundled task: unpacking the shipped build into %s (seconds; `launch.py build` builds it afresh)", root
        )
    else:
        why = "launch.py build" if rebuild else "no build ships with these settings"
        log.info("bundled task: building %s (about an hour on 2 cores, once: %s)", root, why)
    staging = Path(tempfile.mkdtemp(prefix=f".seed{seed}-building-", dir=cache_dir))
    try:
        _unpack(staging, recipe, source) if source is not None else _build(staging, recipe, warm_start)
        _replace(root, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _layout(root)


def _replace(root: Path, staging: Path) -> None:
    """Move the finished build into place, retiring an older build at `root` first."""
    if root.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{root.name}-old-", dir=root.parent))
        os.rename(root, retired / root.name)
        shutil.rmtree(retired, ignore_errors=True)
    try:
        os.rename(staging, root)
    except OSError:
        # Another process finished a build first; keep theirs if it is the one we wanted.
        if not (root / COMPLETE_MARKER).exists():
            raise
