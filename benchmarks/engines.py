"""Caption engines head to head on the bundled captioner: in-place weight update latency and generation.

    python -m benchmarks.engines [--rounds 20] [--shape 100m] [--record]

For each engine and weight sync (transformers and vLLM taking the learner's frames; vLLM
taking a gloo broadcast from a publisher in this process): the latency of an in-place update
with a full set of new weights (what the learner pushes each step; for the broadcast, the
learner's whole publish, acknowledgements included), and the time to generate G captions for a
batch of prompts. All run in one process and take turns, so a drift in the machine's load hits
them alike. Prints a table; --record also writes it to BENCHMARKS.md.

`--shape 100m` does the same for vLLM's two ways of taking the frames, on a captioner of ~110M
random parameters (440 MB a push, where the bundled one's 3.7 MB is lost in the reload's fixed
cost), built from the bundled one's processor files and loaded as a real checkpoint is.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from actors.engine import (
    CaptionRequest,
    SamplingSettings,
    close_event_loop,
)
from actors.engine_factory import make_caption_engine
from actors.weight_receiver import BroadcastWeightReceiver
from benchmarks.gpu_learner import build_checkpoint
from benchmarks.report import machine, write_section
from configs.load import load_config
from configs.schema import SamplingConfig, VllmConfig
from driver.inputs import resolve_inputs
from learner.weight_broadcast import BroadcastWeightPublisher
from learner.weight_publisher import weight_update
from records.vqa import load_image, read_records
from vlm.caption_prompt import encode_caption_prompt
from vlm.sampling import caption_sampling_spec
from wire.weights import decode_weight_update, encode_weight_update

# (engine, weight sync backend); "zmq inline": vLLM's engine process given the frames inside its
# RPC message rather than through shared memory (what it falls back to where /dev/shm is full).
VARIANTS = (("transformers", "zmq"), ("vllm", "zmq"), ("vllm", "zmq inline"), ("vllm", "gloo"))
GROUP_SIZE = 8
PROMPTS = 8
# A captioner of ~110M parameters: BERT-base's width and depth in Qwen2.5-VL's layout.
SHAPE_100M = {
    "text": dict(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=4,
        vocab_size=0,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    ),
    "mrope_section": [8, 12, 12],
    "vision": dict(
        depth=2,
        hidden_size=64,
        intermediate_size=128,
        num_heads=2,
        out_hidden_size=768,
        window_size=56,
        fullatt_block_indexes=[1],
    ),
}


@dataclass
class EngineTimings:
    update_s: list[float]
    generate_s: list[float]
    tokens: int = 0


def _new_weights(checkpoint: str, version: int) -> dict[str, torch.Tensor]:
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(checkpoint)
    generator = torch.Generator().manual_seed(version)
    return {n: p.detach() + 1e-3 * torch.randn(p.shape, generator=generator) for n, p in model.named_parameters()}


class _Broadcast:
    """A learner's broadcast publisher and one actor's receiver serving `engine`."""

    def __init__(self, engine):
        self.publisher = BroadcastWeightPublisher("gloo", "127.0.0.1", 0, receivers=1, timeout_s=60)
        self.receiver = BroadcastWeightReceiver(self.publisher.source().endpoints[0], actor_id=0)
        self.serving = asyncio.get_running_loop().create_task(self.receiver.serve(engine, lambda version: None))

    async def publish(self, version: int, tensors: dict[str, torch.Tensor]) -> None:
        # The learner publishes from its own thread while the actor's loop serves.
        await asyncio.get_running_loop().run_in_executor(None, self.publisher.publish, version, tensors)

    def close(self) -> None:
        self.serving.cancel()
        self.receiver.close()
        self.publisher.close()


async def _one_round(engine, update, requests, weights, timings: EngineTimings) -> None:
    """One in-place update with a full new set of weights, then one generation call."""
    started = time.perf_counter()
    version = engine.policy_version + 1
    await update(version, weights[version % len(weights)])
    timings.update_s.append(time.perf_counter() - started)
    started = time.perf_counter()
    groups = await engine.generate(requests, _sampling(engine))
    timings.generate_s.append(time.perf_counter() - started)
    timings.tokens += sum(len(s.token_ids) for group in groups for s in group)


def _sampling(engine) -> SamplingSettings:
    """Full softmax at temperature 1, the vision placeholders suppressed: the rollout default."""
    spec = caption_sampling_spec(SamplingConfig(temperature=1.0, top_k=0, top_p=1.0), engine.tokenizer)
    return SamplingSettings(spec, n=GROUP_SIZE, max_new_tokens=32)


def _frames_publisher(engine):
    """What the zmq weight sync does between the learner's tensors and the engine's swap."""

    async def publish(version: int, tensors: dict[str, torch.Tensor]) -> None:
        frames = encode_weight_update(weight_update(version, tensors))
        await engine.update_weights(decode_weight_update(frames))

    return publish


def _table(results: dict[str, EngineTimings], megabytes: float) -> str:
    lines = [
        f"| engine | weight sync | update p50 (ms) | update max (ms) | generate {PROMPTS} prompts x G={GROUP_SIZE}, "
        "p50 (s) | tokens/s |",
        "|---|---|---|---|---|---|",
    ]
    for (kind, sync), t in results.items():
        tokens_per_s = t.tokens / sum(t.generate_s)
        lines.append(
            f"| {kind} | {sync} | {1e3 * statistics.median(t.update_s):.1f} | {1e3 * max(t.update_s):.1f} "
            f"| {statistics.median(t.generate_s):.2f} | {tokens_per_s:.0f} |"
        )
    lines.append(f"\nWeights per update: {megabytes:.1f} MB (every captioner parameter, float32).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="updates (each followed by a generation) per engine")
    parser.add_argument("--record", action="store_true", help="write the table into BENCHMARKS.md")
    parser.add_argument("--shape", choices=("bundled", "100m"), default="bundled", help="the captioner measured")
    args = parser.parse_args()
    torch.set_num_threads(1)
    inputs = resolve_inputs(load_config())
    root = Path(inputs.train_file).parent
    records = read_records(inputs.train_file)[:PROMPTS]
    with tempfile.TemporaryDirectory() as scratch:
        captioner, variants = inputs.captioner, VARIANTS
        if args.shape == "100m":
            captioner = str(
                build_checkpoint(Path(inputs.captioner), Path(scratch), SHAPE_100M, "cpu", max_pixels=448 * 448)
            )
            variants = tuple(v for v in VARIANTS if v[1].startswith("zmq") and v[0] == "vllm")
        table = _measure(captioner, variants, records, root, args.rounds)
    print(table)
    where = f"{machine()}, no GPU, 1 torch thread"
    if args.record:
        title, command = ("Caption engines", "python -m benchmarks.engines --record")
        if args.shape == "100m":
            title, command = (
                "Caption engines, 110M-parameter captioner",
                "python -m benchmarks.engines --shape 100m --record",
            )
        write_section(title, command, where, table)


def _measure(captioner: str, variants: tuple, records: list, root: Path, rounds: int) -> str:
    weights = [_new_weights(captioner, seed) for seed in (1, 2)]
    megabytes = sum(t.numel() * t.element_size() for t in weights[0].values()) / 2**20
    loop = asyncio.new_event_loop()

    async def build(kind: str, sync: str):
        engine = make_caption_engine(kind, captioner, VllmConfig(), seed=0, weight_sync=sync.split()[0])
        if sync == "zmq inline":
            engine.shared_memory = False
        broadcast = _Broadcast(engine) if sync == "gloo" else None
        return engine, broadcast

    built = {variant: loop.run_until_complete(build(*variant)) for variant in variants}
    results = {variant: EngineTimings([], []) for variant in variants}
    try:
        requests = {
            variant: [
                CaptionRequest(r.id, encode_caption_prompt(e.processor, r.question, load_image(r, root)))
                for r in records
            ]
            for variant, (e, _) in built.items()
        }
        for variant, (engine, _) in built.items():  # warm-up
            loop.run_until_complete(engine.generate(requests[variant], _sampling(engine)))
        for _ in tqdm(range(rounds), desc="rounds"):
            for variant, (engine, broadcast) in built.items():  # alternating, so drifting load hits all alike
                update = broadcast.publish if broadcast else _frames_publisher(engine)
                loop.run_until_complete(_one_round(engine, update, requests[variant], weights, results[variant]))
    finally:
        for engine, broadcast in built.values():
            if broadcast:
                broadcast.close()
            engine.close()
        close_event_loop(loop)
    return _table(results, megabytes)


if __name__ == "__main__":
    main()
