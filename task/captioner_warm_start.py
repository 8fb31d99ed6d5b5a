"""Warm start of the tiny captioner: faithful captions that stop early at random, and answers.

Each training caption names the scene's objects in cell order and, after each one, goes on
with probability `go_on_prob`, whatever the question asks. The warm-started captioner
therefore writes well-formed, correct captions that often stop before what the question
needs: the reasoner then answers wrong, and GRPO has something to fix (keep describing
until the question's objects are named).

A share of its examples (`CaptionerPlan.answer_share`) asks it to answer instead
(task/direct_answers.py): the direct mode's answer and the two-stage inference's tentative one.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import Qwen2_5_VLForConditionalGeneration

from task.direct_answers import DirectAnswer, caption_question, random_direct_answer
from task.scenes import (
    COLOURS,
    NUM_CELLS,
    SHAPES,
    SceneObject,
    describe,
    parse_caption,
    render_scene,
)
from task.sft import SFTSettings, length_bucketed, pack_sequences, supervised_finetune
from vlm.caption_prompt import (
    CaptionPrompt,
    answer_messages,
    encode_caption_prompt,
    encode_image_prompt,
    mm_token_type_ids,
)
from vlm.processor import load_captioner_processor

Scene = tuple[SceneObject, ...]


@dataclass(frozen=True)
class CaptionQuality:
    """How sampled captions of held-out scenes compare with the scenes."""

    well_formed: float  # fraction of captions in the caption format
    precision: float  # named objects that are in the scene (cell, colour and shape right)
    recall: float  # scene objects the caption names
    direct_accuracy: float  # its own answers (direct mode) right, boxed


def keep_prefix(rng: random.Random, scene: Scene, go_on_prob: float) -> list[SceneObject]:
    """The scene's objects in cell order up to a random stop: after each, the next with probability `go_on_prob`.

    A prefix, not a random subset: the captioner can then write its objects in order and
    stop early. Captions that skip objects asked it to find each named cell's vision token,
    which some seeds never learned (see `warm_start_captioner`).
    """
    kept = [scene[0]]
    for obj in scene[1:]:
        if rng.random() >= go_on_prob:
            break
        kept.append(obj)
    return kept


def _caption_batch(
    prompts: Sequence[CaptionPrompt], targets: Sequence[list[int]], tokenizer
) -> dict[str, torch.Tensor]:
    packed = pack_sequences([p.input_ids.tolist() for p in prompts], targets, tokenizer.pad_token_id)
    image_token_id = prompts[0].image_token_id
    return {
        "input_ids": packed.input_ids,
        "attention_mask": packed.attention_mask,
        "labels": packed.labels,
        "pixel_values": torch.cat([p.pixel_values for p in prompts]),
        "image_grid_thw": torch.cat([p.image_grid_thw for p in prompts]),
        "mm_token_type_ids": mm_token_type_ids(packed.input_ids, image_token_id) * packed.attention_mask,
    }


def _word_ids(tokenizer, words: Sequence[str]) -> list[int]:
    """The token of each word as a caption writes it (after a space); each must be one token."""
    ids = [tokenizer.encode(f" {word}", add_special_tokens=False) for word in words]
    if any(len(piece) != 1 for piece in ids):
        raise ValueError(f"caption words {list(words)} are not single tokens in this tokenizer: {ids}")
    return [piece[0] for piece in ids]


@dataclass(frozen=True)
class _CellTargets:
    """Per vision token (one per cell): what the probes should read from it."""

    occupied: torch.Tensor  # [N] float, 1 where the cell holds an object
    colour: torch.Tensor  # [N] long index into COLOURS (-100 for an empty cell)
    shape: torch.Tensor  # [N] long index into SHAPES (-100 for an empty cell)
    row: torch.Tensor  # [N] long, 0 top / 1 bottom
    column: torch.Tensor  # [N] long, 0 left / 1 right


def _cell_targets(scenes: Sequence[Scene]) -> _CellTargets:
    occupied, colour, shape = [], [], []
    for scene in scenes:
        by_cell = {obj.cell: obj for obj in scene}
        for cell in range(NUM_CELLS):
            obj = by_cell.get(cell)
            occupied.append(float(obj is not None))
            colour.append(COLOURS.index(obj.colour) if obj else -100)
            shape.append(SHAPES.index(obj.shape) if obj else -100)
    cells = torch.arange(NUM_CELLS).repeat(len(scenes))
    return _CellTargets(torch.tensor(occupied), torch.tensor(colour), torch.tensor(shape), cells // 2, cells % 2)


def pretrain_vision(
    model: Qwen2_5_VLForConditionalGeneration,
    prompts: Sequence[CaptionPrompt],
    scenes: Sequence[Scene],
    settings: SFTSettings,
    rng: random.Random,
    tokenizer,
) -> None:
    """Teach the vision tower to say, in the language model's own word embeddings, what each cell holds and where.

    From random weights the language model barely finds the image: its vision tokens start
    out nearly alike, and it learns the caption format long before it learns to look (without
    this stage the colour loss stayed at ln 4). So each vision token is first trained to point
    along the input embeddings of the very words a caption uses for its cell ("bottom",
    "left", "red", "circle"): what the language model must write is then already written in
    its own vocabulary. The embeddings stay as they are; only the vision tower learns.
    """
    embeddings = model.get_input_embeddings().weight.detach()
    words = {
        "colour": embeddings[_word_ids(tokenizer, COLOURS)],
        "shape": embeddings[_word_ids(tokenizer, SHAPES)],
        "row": embeddings[_word_ids(tokenizer, ("top", "bottom"))],
        "column": embeddings[_word_ids(tokenizer, ("left", "right"))],
    }
    width = model.config.vision_config.out_hidden_size
    occupied = torch.nn.Linear(width, 1)
    scale = torch.nn.Parameter(torch.tensor(10.0))  # cosine similarities are too flat for softmax
    visual = model.model.visual
    params = [*visual.parameters(), *occupied.parameters(), scale]

    def read(tokens: torch.Tensor, kind: str) -> torch.Tensor:
        return scale * F.normalize(tokens, dim=-1) @ F.normalize(words[kind], dim=-1).T

    def loss_of(picks: list[int]) -> torch.Tensor:
        # The caption prompts already hold each scene's processed image.
        pixels = torch.cat([prompts[i].pixel_values for i in picks])
        grids = torch.cat([prompts[i].image_grid_thw for i in picks])
        # One vision token per cell, in cell order (the 2x2 merge of a 56x56 image).
        tokens = torch.cat(list(model.model.get_image_features(pixels, grids).pooler_output))
        wanted = _cell_targets([scenes[i] for i in picks])
        return (
            F.binary_cross_entropy_with_logits(occupied(tokens).squeeze(-1), wanted.occupied)
            + F.cross_entropy(read(tokens, "colour"), wanted.colour)
            + F.cross_entropy(read(tokens, "shape"), wanted.shape)
            + F.cross_entropy(read(tokens, "row"), wanted.row)
            + F.cross_entropy(read(tokens, "column"), wanted.column)
        )

    def next_loss(step: int) -> torch.Tensor:
        return loss_of([rng.randrange(len(scenes)) for _ in range(settings.batch_size)])

    supervised_finetune(params, next_loss, settings, name="captioner vision")


@dataclass(frozen=True)
class QualityBar:
    """When the captioner's warm start may stop: its captions of `scenes` are this good."""

    scenes: Sequence[Scene]  # never trained on
    min_precision: float
    min_well_formed: float = 0.95
    min_direct_accuracy: float = 0.0

    def passed_by(self, quality: CaptionQuality) -> bool:
        captions = quality.precision >= self.min_precision and quality.well_formed >= self.min_well_formed
        return captions and quality.direct_accuracy >= self.min_direct_accuracy


@dataclass(frozen=True)
class CaptionerPlan:
    """The captioner's warm start, stage by stage."""

    vision: SFTSettings  # the vision tower alone, with probes
    reading: SFTSettings  # complete captions, until they pass `bar` (at most `reading.steps`)
    stopping: SFTSettings  # captions cut short: after each object, the next with probability `go_on_prob`
    bar: QualityBar
    go_on_prob: float
    answer_share: float = 0.0  # of every stage's examples after the vision one: answering, not captioning


def warm_start_captioner(checkpoint: Path, scenes: Sequence[Scene], plan: CaptionerPlan, seed: int) -> None:
    """Fine-tune the captioner saved at `checkpoint` on `scenes` and save it back in place.

    It first learns to read on complete captions, until its captions of held-out scenes pass
    `plan.bar`; only then does it learn to stop early. Trained on incomplete captions from
    the start (random subsets of the objects), some seeds learned which objects an image held
    but not in which cells, precision 0.5-0.65 after 1200 steps; on complete captions the
    same seeds read the image faithfully (precision 1.0) within 400 steps.
    """
    processor = load_captioner_processor(checkpoint)
    tokenizer = processor.tokenizer
    rng = random.Random(f"captioner-warm-start/{seed}")
    # Encoded once: the image processor is the slowest part of building a batch.
    prompts = [encode_caption_prompt(processor, caption_question(rng, s), render_scene(s)) for s in scenes]
    answers = _direct_answers(rng, scenes, plan.answer_share)
    prompts += [encode_image_prompt(processor, answer_messages(a.text), render_scene(a.scene)) for a in answers]

    def train(
        settings: SFTSettings, go_on_prob: float, name: str, good_enough: Callable[[], bool] | None = None
    ) -> None:
        def draw() -> tuple[int, list[int]]:
            if answers and rng.random() < plan.answer_share:
                pick = rng.randrange(len(answers))
                return len(scenes) + pick, tokenizer.encode(answers[pick].reply, add_special_tokens=False) + [
                    tokenizer.eos_token_id
                ]
            pick = rng.randrange(len(scenes))
            caption = describe(scenes[pick], keep_prefix(rng, scenes[pick], go_on_prob))
            return pick, tokenizer.encode(caption, add_special_tokens=False) + [tokenizer.eos_token_id]

        batches = length_bucketed(
            draw, lambda ex: (len(prompts[ex[0]].input_ids), len(ex[1])), settings.batch_size, rng
        )

        def next_loss(step: int) -> torch.Tensor:
            batch = next(batches)
            return model(**_caption_batch([prompts[i] for i, _ in batch], [t for _, t in batch], tokenizer)).loss

        supervised_finetune(list(model.parameters()), next_loss, settings, name, good_enough)

    log = logging.getLogger(__name__)
    passed = False

    def reads_well() -> bool:
        nonlocal passed
        model.save_pretrained(checkpoint, safe_serialization=True)
        quality = caption_quality(checkpoint, plan.bar.scenes, seed)
        log.info("warm start captioner: held-out %s", quality)
        passed = plan.bar.passed_by(quality)
        return passed

    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(checkpoint)
    pretrain_vision(model, prompts[: len(scenes)], scenes, plan.vision, rng, tokenizer)
    train(plan.reading, 1.0, "captioner reading", reads_well)
    if not passed and plan.reading.check_every:
        log.warning(
            "warm start captioner: still below precision %.2f or direct accuracy %.2f after %d reading steps; its "
            "captions will often misname objects, or its own answers miss (raise task.warm_start.reading_steps)",
            plan.bar.min_precision,
            plan.bar.min_direct_accuracy,
            plan.reading.steps,
        )
    train(plan.stopping, plan.go_on_prob, "captioner stopping early")
    model.save_pretrained(checkpoint, safe_serialization=True)


def _direct_answers(rng: random.Random, scenes: Sequence[Scene], share: float) -> list[DirectAnswer]:
    """One question to answer for as many scenes as answering's share of the examples needs
    (at least a quarter of them, so none is seen so often that it is learned by heart)."""
    if share <= 0:
        return []
    count = min(len(scenes), max(len(scenes) // 4, round(share * len(scenes))))
    return [random_direct_answer(rng, scene) for scene in scenes[:count]]


def caption_quality(checkpoint: Path, scenes: Sequence[Scene], seed: int, max_new_tokens: int = 32) -> CaptionQuality:
    """Sample one caption per scene (temperature 1, the rollout default) and score it against the
    scene; and one answer to a question about it (`direct_accuracy`)."""
    from actors.engine import CaptionRequest, SamplingSettings
    from actors.hf_engine import TransformersCaptionEngine
    from configs.schema import SamplingConfig
    from vlm.sampling import caption_sampling_spec

    engine = TransformersCaptionEngine(str(checkpoint), seed=seed)
    rng = random.Random(f"caption-quality/{seed}")
    requests = [
        CaptionRequest(str(i), encode_caption_prompt(engine.processor, caption_question(rng, s), render_scene(s)))
        for i, s in enumerate(scenes)
    ]
    spec = caption_sampling_spec(SamplingConfig(temperature=1.0, top_k=0, top_p=1.0), engine.tokenizer)
    sampling = SamplingSettings(spec, n=1, max_new_tokens=max_new_tokens)
    named = correct = total = well_formed = 0
    for start in range(0, len(requests), 32):
        groups = asyncio.run(engine.generate(requests[start : start + 32], sampling))
        for scene, (sample,) in zip(scenes[start : start + 32], groups):
            objects = parse_caption(sample.text)
            total += len(scene)
            if objects is None:
                continue
            well_formed += 1
            named += len(objects)
            correct += len(set(objects) & set(scene))
    return CaptionQuality(
        well_formed=well_formed / len(scenes),
        precision=correct / max(1, named),
        recall=correct / max(1, total),
        direct_accuracy=direct_accuracy(engine, scenes, sampling, rng),
    )


def direct_accuracy(engine, scenes: Sequence[Scene], sampling, rng: random.Random) -> float:
    """The share of questions about `scenes` (plain or with options) the captioner answers right itself."""
    from actors.engine import CaptionRequest
    from serve.grading import grade

    asked = [random_direct_answer(rng, scene) for scene in scenes]
    requests = [
        CaptionRequest(str(i), encode_image_prompt(engine.processor, answer_messages(a.text), render_scene(a.scene)))
        for i, a in enumerate(asked)
    ]
    right = 0
    for start in range(0, len(requests), 32):
        groups = asyncio.run(engine.generate(requests[start : start + 32], sampling))
        for example, (sample,) in zip(asked[start : start + 32], groups):
            right += grade(sample.text, example.answer, question=example.text).score == 1.0
    return right / len(asked)
