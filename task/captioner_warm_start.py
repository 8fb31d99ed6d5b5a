"""Warm start of the tiny captioner: faithful captions that leave objects out at random.

Each training caption names every object of the scene with probability `keep_prob` (at least
one), whatever the question asks. The warm-started captioner therefore writes well-formed,
mostly correct captions that often miss what the question needs: the reasoner then answers
wrong, and GRPO has something to fix (name what the question asks about).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import Qwen2_5_VLForConditionalGeneration

from task.scenes import (
    COLOURS,
    NUM_CELLS,
    SHAPES,
    SceneObject,
    describe,
    make_question,
    parse_caption,
    render_scene,
)
from task.sft import SFTSettings, pack_sequences, supervised_finetune
from vlm.caption_prompt import (
    CaptionPrompt,
    encode_caption_prompt,
    mm_token_type_ids,
)
from vlm.processor import load_captioner_processor

Scene = tuple[SceneObject, ...]
# Images per vision-probe step: a vision-only step is cheap, and bigger batches settled faster.
_VISION_BATCH = 64


@dataclass(frozen=True)
class CaptionQuality:
    """How sampled captions of held-out scenes compare with the scenes."""

    well_formed: float  # fraction of captions in the caption format
    precision: float  # named objects that are in the scene (cell, colour and shape right)
    recall: float  # scene objects the caption names


def keep_subset(rng: random.Random, scene: Scene, keep_prob: float) -> list[SceneObject]:
    """Each object with probability `keep_prob`; one at random if that leaves none."""
    kept = [obj for obj in scene if rng.random() < keep_prob]
    return kept or [rng.choice(list(scene))]


def _caption_batch(
    prompts: Sequence[CaptionPrompt], captions: Sequence[str], tokenizer
) -> dict[str, torch.Tensor]:
    targets = [tokenizer.encode(caption, add_special_tokens=False) + [tokenizer.eos_token_id] for caption in captions]
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


def _cell_labels(scene: Scene) -> list[int]:
    """Per grid cell: 0 for empty, else 1 + the (colour, shape) index."""
    labels = [0] * NUM_CELLS
    for obj in scene:
        labels[obj.cell] = 1 + COLOURS.index(obj.colour) * len(SHAPES) + SHAPES.index(obj.shape)
    return labels


def pretrain_vision(
    model: Qwen2_5_VLForConditionalGeneration,
    prompts: Sequence[CaptionPrompt],
    scenes: Sequence[Scene],
    settings: SFTSettings,
    rng: random.Random,
) -> None:
    """Teach the vision tower what each cell holds and where it is, with two linear probes.

    From random weights the language model barely finds the image: its vision tokens start
    out nearly alike and it learns the caption format long before it learns to look. With
    vision tokens that already name their cell's content and place, captioning is a lookup it
    learns in a few hundred steps. Both probes are thrown away afterwards.
    """
    width = model.config.vision_config.out_hidden_size
    content = torch.nn.Linear(width, 1 + len(COLOURS) * len(SHAPES))
    place = torch.nn.Linear(width, NUM_CELLS)
    visual = model.model.visual
    params = [*visual.parameters(), *content.parameters(), *place.parameters()]

    def loss_of(picks: list[int]) -> torch.Tensor:
        # The caption prompts already hold each scene's processed image.
        pixels = torch.cat([prompts[i].pixel_values for i in picks])
        grids = torch.cat([prompts[i].image_grid_thw for i in picks])
        # One vision token per cell, in cell order (the 2x2 merge of a 56x56 image).
        tokens = torch.cat(list(model.model.get_image_features(pixels, grids).pooler_output))
        wanted = torch.tensor([label for i in picks for label in _cell_labels(scenes[i])])
        cells = torch.arange(NUM_CELLS).repeat(len(picks))
        return F.cross_entropy(content(tokens), wanted) + F.cross_entropy(place(tokens), cells)

    def next_loss(step: int) -> torch.Tensor:
        return loss_of([rng.randrange(len(scenes)) for _ in range(_VISION_BATCH)])

    supervised_finetune(params, next_loss, settings, name="captioner vision")


def warm_start_captioner(
    checkpoint: Path,
    scenes: Sequence[Scene],
    vision_settings: SFTSettings,
    settings: SFTSettings,
    batch_size: int,
    keep_prob: float,
    seed: int,
) -> None:
    """Fine-tune the captioner saved at `checkpoint` on `scenes` and save it back in place."""
    processor = load_captioner_processor(checkpoint)
    tokenizer = processor.tokenizer
    rng = random.Random(f"captioner-warm-start/{seed}")
    # Encoded once: the image processor is the slowest part of building a batch.
    prompts = [encode_caption_prompt(processor, make_question(rng, s)[0], render_scene(s)) for s in scenes]

    def next_loss(step: int) -> torch.Tensor:
        picks = [rng.randrange(len(scenes)) for _ in range(batch_size)]
        captions = [describe(scenes[i], keep_subset(rng, scenes[i], keep_prob)) for i in picks]
        return model(**_caption_batch([prompts[i] for i in picks], captions, tokenizer)).loss

    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(checkpoint)
    pretrain_vision(model, prompts, scenes, vision_settings, rng)
    supervised_finetune(list(model.parameters()), next_loss, settings, name="captioner")
    model.save_pretrained(checkpoint, safe_serialization=True)


def caption_quality(checkpoint: Path, scenes: Sequence[Scene], seed: int, max_new_tokens: int = 32) -> CaptionQuality:
    """Sample one caption per scene (temperature 1, the rollout default) and score it against the scene."""
    from actors.engine import CaptionRequest, SamplingSettings
    from actors.hf_engine import TransformersCaptionEngine

    engine = TransformersCaptionEngine(str(checkpoint), seed=seed)
    rng = random.Random(f"caption-quality/{seed}")
    requests = [
        CaptionRequest(str(i), encode_caption_prompt(engine.processor, make_question(rng, s)[0], render_scene(s)))
        for i, s in enumerate(scenes)
    ]
    sampling = SamplingSettings(n=1, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=max_new_tokens)
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
    )
