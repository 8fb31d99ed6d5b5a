"""Tiny Qwen2.5-VL captioner and Qwen2 reasoner checkpoints, built offline from random weights.

They are saved in Hugging Face format and loaded back through the same `from_pretrained` path a
real Qwen2.5-VL-3B / Qwen2 checkpoint takes, so nothing downstream special-cases them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    PreTrainedTokenizerBase,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2VLImageProcessorPil,
)

# Text tower shared by both models. head_dim = 128 / 4 = 32: vLLM's CPU attention refuses 16.
_HIDDEN = 128
_LAYERS = 4
_HEADS = 4
_KV_HEADS = 2
_INTERMEDIATE = 256
# Multimodal RoPE splits head_dim / 2 = 16 rotary frequencies over (time, height, width).
_MROPE_SECTION = (4, 6, 6)
_ROPE_THETA = 1_000_000.0
_REASONER_ROPE_THETA = 10_000.0
_MAX_POSITIONS = 4096

# Vision tower: 14 px patches merged 2x2, so a 56x56 image is 2x2 = 4 vision tokens.
_PATCH = 14
_MERGE = 2
_TEMPORAL_PATCH = 2
_MIN_PIXELS = 56 * 56
_MAX_PIXELS = 224 * 224


def _token_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """Special ids from our tokenizer; the configs' defaults are the real Qwen 151xxx ids."""
    ids = {
        name: tokenizer.convert_tokens_to_ids(token)
        for name, token in (
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        )
    }
    ids["eos_token_id"] = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids["pad_token_id"] = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    # Qwen has no BOS in its prompts; its configs name <|endoftext|> as bos all the same.
    ids["bos_token_id"] = ids["pad_token_id"]
    return ids


def _sampling_config(ids: dict[str, int]) -> GenerationConfig:
    # Explicit top_k=0 / top_p=1: left as None, generate() applies top_k=50, and logprobs
    # computed later would then differ from the distribution that was actually sampled.
    return GenerationConfig(
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        bos_token_id=ids["bos_token_id"],
        eos_token_id=ids["eos_token_id"],
        pad_token_id=ids["pad_token_id"],
    )


def _text_kwargs(vocab_size: int, ids: dict[str, int]) -> dict:
    return dict(
        vocab_size=vocab_size,
        hidden_size=_HIDDEN,
        intermediate_size=_INTERMEDIATE,
        num_hidden_layers=_LAYERS,
        num_attention_heads=_HEADS,
        num_key_value_heads=_KV_HEADS,
        max_position_embeddings=_MAX_POSITIONS,
        bos_token_id=ids["bos_token_id"],
        eos_token_id=ids["eos_token_id"],
        pad_token_id=ids["pad_token_id"],
        tie_word_embeddings=False,
    )


def captioner_config(tokenizer: PreTrainedTokenizerBase) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config of ~1M parameters whose vocabulary is exactly the tokenizer's."""
    ids = _token_ids(tokenizer)
    text = _text_kwargs(len(tokenizer), ids)
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": _ROPE_THETA,
        "mrope_section": list(_MROPE_SECTION),
    }
    vision = dict(
        depth=2,
        hidden_size=64,
        intermediate_size=128,
        num_heads=2,  # vision head_dim 32
        out_hidden_size=_HIDDEN,
        patch_size=_PATCH,
        spatial_merge_size=_MERGE,
        temporal_patch_size=_TEMPORAL_PATCH,
        window_size=56,
        # The last of the two blocks attends globally, as every 8th block does in the real model.
        fullatt_block_indexes=[1],
    )
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["image_token_id"],
        video_token_id=ids["video_token_id"],
        vision_start_token_id=ids["vision_start_token_id"],
        vision_end_token_id=ids["vision_end_token_id"],
        bos_token_id=ids["bos_token_id"],
        eos_token_id=ids["eos_token_id"],
        pad_token_id=ids["pad_token_id"],
        tie_word_embeddings=False,
    )


def _save_image_processor(out_dir: Path) -> None:
    """Write preprocessor_config.json in the layout of a real Qwen2.5-VL checkpoint.

    Saved as "Qwen2VLImageProcessor" with "Qwen2_5_VLProcessor" as its processor, like the
    released checkpoints, so GPU machines load it with the stock AutoProcessor and CPU machines
    take their PIL fallback for the same file.
    """
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=_MIN_PIXELS,
        max_pixels=_MAX_PIXELS,
        patch_size=_PATCH,
        merge_size=_MERGE,
        temporal_patch_size=_TEMPORAL_PATCH,
    )
    image_processor.image_processor_type = "Qwen2VLImageProcessor"
    image_processor.processor_class = "Qwen2_5_VLProcessor"
    image_processor.save_pretrained(out_dir)


def _save_random_model(model_class, config, tokenizer: PreTrainedTokenizerBase, out_dir: Path, seed: int) -> Path:
    """Initialise `model_class(config)` from `seed`, set our sampling defaults, save it with the tokenizer."""
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    model = model_class(config)
    model.generation_config = _sampling_config(_token_ids(tokenizer))
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_tiny_captioner(out_dir: Path, tokenizer: PreTrainedTokenizerBase, seed: int) -> Path:
    """Save a randomly initialised tiny Qwen2.5-VL captioner (model, tokenizer, processor) to `out_dir`."""
    out_dir = _save_random_model(
        Qwen2_5_VLForConditionalGeneration, captioner_config(tokenizer), tokenizer, out_dir, seed
    )
    _save_image_processor(out_dir)
    return out_dir


def reasoner_config(tokenizer: PreTrainedTokenizerBase) -> Qwen2Config:
    """A Qwen2 config with the captioner's text-tower shape and the tokenizer's vocabulary.

    Its RoPE base is 1e4, not Qwen's 1e6: over prompts of a hundred tokens the faster rotations
    tell nearby positions apart, and the warm start learned to copy objects from the caption
    in fewer steps with them.
    """
    ids = _token_ids(tokenizer)
    rope = {"rope_type": "default", "rope_theta": _REASONER_ROPE_THETA}
    return Qwen2Config(rope_parameters=rope, **_text_kwargs(len(tokenizer), ids))


def build_tiny_reasoner(out_dir: Path, tokenizer: PreTrainedTokenizerBase, seed: int) -> Path:
    """Save a randomly initialised tiny Qwen2 reasoner (model, tokenizer) to `out_dir`."""
    return _save_random_model(Qwen2ForCausalLM, reasoner_config(tokenizer), tokenizer, out_dir, seed)
