"""The bundled task's dataset: rendered scenes, counting questions and multiple-choice question sets,
written as VQA records."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from records.vqa import VQARecord
from task.scenes import (
    ATTRIBUTE_OPTIONS,
    MAX_OBJECTS,
    CellQuestion,
    CountQuestion,
    SceneObject,
    describe,
    make_question,
    random_scene,
    render_scene,
)
from wire.scoring import MCQuestion

# The multiple-choice reward's questions per image (reward.kind=mcq), and the total count's options.
MC_QUESTIONS = 4
TOTAL_OPTIONS = tuple(str(n) for n in range(1, MAX_OBJECTS + 1))


@dataclass(frozen=True)
class DatasetFiles:
    """Where `write_bundled_dataset` put the two splits, and the scenes of both."""

    train: Path
    eval: Path
    # Kept so the warm start never shows one of them: held-out accuracy then measures reading
    # unseen images, and the training reward starts where the held-out accuracy does.
    scenes: frozenset[tuple[SceneObject, ...]]


def _scene_stream(seed: int, split: str) -> Iterator[tuple[SceneObject, ...]]:
    # String seeds are hashed with SHA-512 by `random`, so streams are stable across runs
    # and independent between splits.
    rng = random.Random(f"bundled-scenes/{split}/{seed}")
    while True:
        yield random_scene(rng)


def total_question(scene: tuple[SceneObject, ...]) -> MCQuestion:
    """ "How many objects are there?" with the options 1 to MAX_OBJECTS.

    Scenes hold 1 to MAX_OBJECTS objects, each count equally likely (`random_scene`), so any
    fixed option, the smallest included, is right 1 time in MAX_OBJECTS: counting by colour or
    shape could not be balanced so (on a 2x2 grid most such counts are 0 or 1).
    """
    question = CountQuestion()
    return MCQuestion(question.text, TOTAL_OPTIONS, TOTAL_OPTIONS.index(str(question.count(scene))))


def cell_question(question: CellQuestion, scene: tuple[SceneObject, ...]) -> MCQuestion:
    """The colour or shape question about an occupied cell, its options in their canonical order."""
    right = question.answer(scene)
    if right is None:
        raise ValueError(f"{question.text!r}: no object in that cell of {scene}")
    return MCQuestion(question.text, question.options, question.options.index(right))


def multiple_choice_questions(rng: random.Random, scene: tuple[SceneObject, ...], count: int) -> tuple[MCQuestion, ...]:
    """The multiple-choice reward's question set of one image: the total count, then up to
    `count` - 1 different colour or shape questions about its occupied cells (a one-object scene
    has only two), options in canonical order (the reward shuffles and relabels them)."""
    candidates = [CellQuestion(obj.cell, attribute) for obj in scene for attribute in ATTRIBUTE_OPTIONS]
    chosen = sorted(rng.sample(candidates, min(count - 1, len(candidates))), key=lambda q: (q.cell, q.attribute))
    return (total_question(scene), *(cell_question(question, scene) for question in chosen))


def _write_split(
    out_dir: Path, split: str, count: int, seed: int, exclude: set[tuple[SceneObject, ...]]
) -> tuple[Path, set[tuple[SceneObject, ...]]]:
    """Render `count` scenes (none of them in `exclude`) and write `<split>.jsonl`."""
    question_rng = random.Random(f"bundled-questions/{split}/{seed}")
    mcq_rng = random.Random(f"bundled-mcq/{split}/{seed}")  # a stream of its own: the rest stays as it was
    scenes = (scene for scene in _scene_stream(seed, split) if scene not in exclude)
    used: set[tuple[SceneObject, ...]] = set()
    path = out_dir / f"{split}.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for index in range(count):
            scene = next(scenes)
            used.add(scene)
            record_id = f"{split}-{index:06d}"
            image_rel = f"images/{record_id}.png"
            render_scene(scene).save(out_dir / image_rel)
            question, answer = make_question(question_rng, scene)
            questions = multiple_choice_questions(mcq_rng, scene, MC_QUESTIONS)
            record = VQARecord(
                id=record_id,
                image=image_rel,
                question=question,
                answer=answer,
                questions=questions,
                reference=describe(scene),  # every object, in cell order: what a judge of captions compares with
            )
            out.write(json.dumps(asdict(record)) + "\n")
    return path, used


def write_bundled_dataset(out_dir: Path, num_train: int, num_eval: int, seed: int) -> DatasetFiles:
    """Write `train.jsonl`, `eval.jsonl` and their PNGs under `out_dir/images/`.

    Deterministic from `seed`. Eval scenes are drawn from their own random stream and never
    equal a train scene, so eval reward measures reading images, not memory.
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    train_path, train_scenes = _write_split(out_dir, "train", num_train, seed, exclude=set())
    eval_path, eval_scenes = _write_split(out_dir, "eval", num_eval, seed, exclude=train_scenes)
    return DatasetFiles(train=train_path, eval=eval_path, scenes=frozenset(train_scenes | eval_scenes))
