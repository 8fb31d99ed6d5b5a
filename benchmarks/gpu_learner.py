"""`python -m benchmarks.gpu_learner out=PATH --processor DIR [--groups-per-micro-batch N] [--tiny]`:
the learner's GRPO update
under DeepSpeed (bf16, ZeRO-1) and the transformers caption engine's generation, on one GPU,
with a Qwen2.5-VL-3B-shaped captioner: random weights, built from the published 3B config's
shapes and saved, then loaded through `from_pretrained` as a real checkpoint is.

It needs no Ray, vLLM or dataset: the prompts are images of the bundled task's kind (noise at
448x448, 256 vision tokens each) with a question, the captions come from the engine itself, the
rewards are drawn at random (a GRPO update costs the same whatever they are). `--processor` is a
captioner folder for its tokenizer and processor config (the bundled one's). `--tiny` runs the
same code on the bundled tiny shape on a CPU, as a check of the script.

Reported: generation tokens/s (new tokens over wall time), the update's tokens/s (every position
of every sequence: the forward and backward run over all of them) and its model FLOPs
utilisation: 6 x (the language model's matmul parameters, the output projection included) x
tokens + 2 x (the frozen vision tower's parameters) x patches, over the update's time, against
the GPU's dense bf16 peak (attention scores not counted, as usual). PATH/gpu_learner.json and
.md hold the results; `--record-from PATH/gpu_learner.json` writes BENCHMARKS.md's section.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

COMMAND = "python -m benchmarks.gpu_learner out=runs/gpu --processor ~/.cache/caption-reward-rl/seed0/captioner"
# Dense bf16 tensor-core peaks (vendor specifications), by the name torch reports.
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}
# Qwen2.5-VL-3B-Instruct's published shapes (its config.json).
SHAPE_3B = {
    "text": dict(
        hidden_size=2048,
        intermediate_size=11008,
        num_hidden_layers=36,
        num_attention_heads=16,
        num_key_value_heads=2,
        vocab_size=151936,
        max_position_embeddings=128000,
        tie_word_embeddings=True,
    ),
    "mrope_section": [16, 24, 24],
    "vision": dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        out_hidden_size=2048,
        window_size=112,
        fullatt_block_indexes=[7, 15, 23, 31],
    ),
}
SHAPE_TINY = {
    "text": dict(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=0,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    ),
    "mrope_section": [4, 6, 6],
    "vision": dict(
        depth=2,
        hidden_size=64,
        intermediate_size=128,
        num_heads=2,
        out_hidden_size=128,
        window_size=56,
        fullatt_block_indexes=[1],
    ),
}


def build_checkpoint(processor_dir: Path, out_dir: Path, shape: dict, device: str, max_pixels: int) -> Path:
    """Random weights of `shape`, with the tokenizer's special ids, saved with its processor files."""
    import shutil

    from transformers import AutoTokenizer, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(str(processor_dir))
    ids = {
        name: tokenizer.convert_tokens_to_ids(token)
        for name, token in (
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        )
    }
    specials = dict(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tokenizer.pad_token_id)
    text = {**shape["text"], **specials, "vocab_size": shape["text"]["vocab_size"] or len(tokenizer)}
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": shape["mrope_section"]}
    vision = {**shape["vision"], "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
    config = Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, **ids, **specials, tie_word_embeddings=text["tie_word_embeddings"]
    )
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)
    model.save_pretrained(out_dir, safe_serialization=True)
    for name in processor_dir.iterdir():  # tokenizer, chat template, processor configs; not the weights
        if name.is_file() and not name.name.startswith(("model", "config.json", "generation_config")):
            shutil.copy(name, out_dir / name.name)
    preprocessor = json.loads((out_dir / "preprocessor_config.json").read_text())
    preprocessor.update(max_pixels=max_pixels, size={"shortest_edge": 56 * 56, "longest_edge": max_pixels})
    (out_dir / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    del model
    return out_dir


def prompts(processor, count: int, side: int, seed: int):
    from PIL import Image

    from actors.engine import CaptionRequest
    from vlm.caption_prompt import encode_caption_prompt

    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(count)]
    question = "How many red circles are there?"
    return images, [
        CaptionRequest(f"p{i}", encode_caption_prompt(processor, question, im)) for i, im in enumerate(images)
    ]


def measure_generation(
    checkpoint: Path, device: str, requests, group_size: int, max_new_tokens: int, spec
) -> tuple[dict, list]:
    from actors.engine import SamplingSettings
    from actors.hf_engine import TransformersCaptionEngine

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    engine = TransformersCaptionEngine(str(checkpoint), device=device, dtype=dtype, seed=0)
    asyncio.run(engine.generate(requests[:1], SamplingSettings(spec, n=2, max_new_tokens=4)))  # warm-up
    sync(device)
    started = time.perf_counter()
    groups = asyncio.run(engine.generate(requests, SamplingSettings(spec, n=group_size, max_new_tokens=max_new_tokens)))
    sync(device)
    seconds = time.perf_counter() - started
    tokens = sum(len(s.token_ids) for g in groups for s in g)
    del engine
    if device == "cuda":
        torch.cuda.empty_cache()
    return {
        "generate_s": seconds,
        "generated_tokens": tokens,
        "generate_tokens_per_s": tokens / seconds,
        "sequences": len(requests) * group_size,
    }, groups


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def scored_groups(images, requests, groups, seed: int):
    import io

    from wire.scored_group import COUNTER_NAMES, ActorCounters, GroupTimings, ScoredGroup

    rng = np.random.default_rng(seed)
    made = []
    for image, request, samples in zip(images, requests, groups):
        png = io.BytesIO()
        image.save(png, format="PNG")
        made.append(
            ScoredGroup(
                group_id=request.prompt_id,
                prompt_id=request.prompt_id,
                actor_id=0,
                prompt_position=len(made),
                prompt_token_ids=request.prompt.input_ids,
                image_png=png.getvalue(),
                completion_ids=tuple(s.token_ids for s in samples),
                behaviour_logprobs=tuple(s.logprobs for s in samples),
                token_versions=tuple(s.token_versions for s in samples),
                rewards=rng.integers(0, 2, len(samples)).astype(np.float32),
                answers=((),) * len(samples),
                timings=GroupTimings(0.0, 0.0, 0.0),
                counters=ActorCounters(**dict.fromkeys(COUNTER_NAMES, 0)),
            )
        )
    return made


def measure_update(checkpoint: Path, device: str, groups, spec, updates: int, per_micro_batch: int = 1) -> dict:
    from transformers import AutoModelForImageTextToText

    from configs.schema import LearnerConfig
    from learner.batching import group_batch, packed
    from learner.distributed import RankInfo, build_engine, free_port, init_process_group, micro_batches_per_step
    from learner.grpo import group_advantages
    from learner.update import grpo_update
    from vlm.processor import load_captioner_processor

    config = LearnerConfig(
        groups_per_step=len(groups),
        groups_per_micro_batch=per_micro_batch,
        dtype="bf16" if device == "cuda" else "fp32",
        zero_stage=1,
        lr=1e-6,
    )
    init_process_group(RankInfo(0, 1, "127.0.0.1", free_port()))
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForImageTextToText.from_pretrained(str(checkpoint), dtype=dtype)
    model.model.visual.requires_grad_(False)
    engine = build_engine(model.train(), config, micro_batches_per_step(config, 1), 1)
    processor = load_captioner_processor(str(checkpoint))
    rewards = torch.tensor(np.stack([g.rewards for g in groups]))
    advantages = group_advantages(rewards)
    pad = processor.tokenizer.pad_token_id
    each = [group_batch(g, processor, advantages[i], pad) for i, g in enumerate(groups)]
    batches = [
        packed(each[i : i + per_micro_batch], pad).to(engine.device) for i in range(0, len(each), per_micro_batch)
    ]
    grpo_update(engine, None, batches, 0, config, spec)  # warm-up: allocations, kernels
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    started = time.perf_counter()
    for _ in range(updates):
        grpo_update(engine, None, batches, 0, config, spec)
    sync(device)
    seconds = (time.perf_counter() - started) / updates
    tokens = sum(int(b.input_ids.numel()) for b in batches)
    patches = sum(int(b.pixel_values.shape[0]) for b in batches)
    flops = update_flops(model, tokens, patches)
    return {
        "update_s": seconds,
        "update_tokens": tokens,
        "update_tokens_per_s": tokens / seconds,
        "completion_tokens": int(sum(float(b.completion_mask.sum()) for b in batches)),
        "vision_patches": patches,
        "model_flops_per_update": flops,
        "achieved_flops": flops / seconds,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan"),
        "groups_per_update": len(groups),
        "groups_per_micro_batch": per_micro_batch,
        **parameter_counts(model),
    }


def update_flops(model, tokens: int, patches: int) -> float:
    """6 N T for the language model's matmuls (forward and backward) plus 2 N P for the frozen
    vision tower's forward; embeddings are lookups, not matmuls."""
    language = sum(p.numel() for n, p in model.model.language_model.named_parameters() if "embed_tokens" not in n)
    head = model.lm_head.weight.numel()
    vision = sum(p.numel() for p in model.model.visual.parameters())
    return 6.0 * (language + head) * tokens + 2.0 * vision * patches


def parameter_counts(model) -> dict:
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "vision_parameters": sum(p.numel() for p in model.model.visual.parameters()),
    }


def report(result: dict) -> str:
    rows = [
        ("GPU", result["gpu"]),
        (
            "model",
            f"Qwen2.5-VL-3B shape, {result['parameters'] / 1e9:.2f} B parameters "
            f"({result['vision_parameters'] / 1e9:.2f} B vision, frozen), random weights",
        ),
        ("software", result["software"]),
        (
            "generation (transformers engine)",
            f"{result['prompts']} prompts x G={result['group_size']}, {result['max_new_tokens']} new tokens each: "
            f"{result['generate_tokens_per_s']:.0f} tokens/s ({result['generate_s']:.1f} s)",
        ),
        (
            "GRPO update (DeepSpeed ZeRO-1, bf16)",
            f"{result['groups_per_update']} groups, {result['update_tokens']} tokens "
            f"({result['completion_tokens']} completion): {result['update_s']:.2f} s, "
            f"{result['update_tokens_per_s']:.0f} tokens/s",
        ),
        (
            "model FLOPs utilisation",
            f"{result['achieved_flops'] / 1e12:.0f} TFLOP/s = {100 * result['mfu']:.1f}% of "
            f"{result['peak_flops'] / 1e12:.0f} (dense bf16 peak)",
        ),
        ("peak GPU memory in the update", f"{result['peak_memory_gib']:.1f} GiB"),
    ]
    return "\n".join(["| what | measured |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def notes(result: dict) -> str:
    """What the numbers say, from the numbers."""
    per_pass = result.get("groups_per_micro_batch", 1)
    tokens = result["update_tokens"] * per_pass / result["groups_per_update"]
    vision_share = 2.0 * result["vision_parameters"] * result["vision_patches"] / result["model_flops_per_update"]
    return (
        f"One micro-batch is {per_pass} group(s) of {result['group_size']} sequences, {tokens:.0f} tokens "
        f"(`learner.groups_per_micro_batch`, `--groups-per-micro-batch`): more groups per pass are the first thing to "
        f"try for a higher utilisation. The vision tower encodes each group's image once "
        f"(`learner/shared_vision.py`): {100 * vision_share:.0f}% of the FLOPs counted. The transformers engine's "
        f"generation is the slow path kept for machines without vLLM; on GPUs the rollout runs `rollout.engine=vllm`."
    )


def run(out: Path, processor_dir: Path, tiny: bool, per_micro_batch: int = 1) -> dict:
    import transformers

    from configs.schema import SamplingConfig
    from vlm.processor import load_captioner_processor
    from vlm.sampling import caption_sampling_spec

    device = "cuda" if torch.cuda.is_available() and not tiny else "cpu"
    if device == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    shape, side, count, group_size, new_tokens = (SHAPE_TINY, 112, 2, 4, 8) if tiny else (SHAPE_3B, 448, 4, 8, 256)
    checkpoint = build_checkpoint(processor_dir, out / "checkpoint", shape, device, max_pixels=side * side)
    processor = load_captioner_processor(str(checkpoint))
    spec = caption_sampling_spec(SamplingConfig(), processor.tokenizer)
    images, requests = prompts(processor, count, side, seed=0)
    print(f"built the checkpoint; {len(requests[0].prompt.input_ids)} prompt tokens per image", flush=True)
    generation, groups = measure_generation(checkpoint, device, requests, group_size, new_tokens, spec)
    print(f"generation: {generation}", flush=True)
    update = measure_update(
        checkpoint, device, scored_groups(images, requests, groups, seed=1), spec, 3, per_micro_batch
    )
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), float("nan"))
    result = {
        **generation,
        **update,
        "gpu": name,
        "peak_flops": peak,
        "mfu": update["achieved_flops"] / peak,
        "prompts": count,
        "group_size": group_size,
        "max_new_tokens": new_tokens,
        "software": (
            f"torch {torch.__version__}, transformers {transformers.__version__}, deepspeed {_deepspeed_version()}"
        ),
    }
    (out / "gpu_learner.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "gpu_learner.md").write_text(report(result) + "\n")
    print(report(result), flush=True)
    return result


def _deepspeed_version() -> str:
    import deepspeed

    return deepspeed.__version__


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", help="out=PATH")
    parser.add_argument("--processor", type=Path, help="a captioner folder (tokenizer, processor config)")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument(
        "--groups-per-micro-batch", type=int, default=1, help="caption groups in one forward and backward pass"
    )
    parser.add_argument("--record-from", type=Path, help="write BENCHMARKS.md's section from a gpu_learner.json")
    args = parser.parse_args(argv)
    if args.record_from:
        from benchmarks.report import write_section

        result = json.loads(args.record_from.read_text())
        write_section(
            "GPU learner (Qwen2.5-VL-3B shape)",
            COMMAND,
            f"one {result['gpu']}",
            report(result) + "\n\n" + notes(result),
        )
        return 0
    if not (args.out and args.out.startswith("out=") and args.processor):
        parser.error("give out=PATH and --processor DIR")
    out = Path(args.out.removeprefix("out="))
    out.mkdir(parents=True, exist_ok=True)
    run(out, args.processor, args.tiny, args.groups_per_micro_batch)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
