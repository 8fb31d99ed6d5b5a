"""The replay path's codec: encoding and decoding (with every check) a ScoredGroup.

    python -m benchmarks.wire [--rounds 2000] [--record]

Two groups: the bundled task's (G=8 captions of 32 tokens, a 56x56 PNG of ~300 bytes) and a
paper-sized one (G=4 of 256 tokens, a ~50 KB image); the median of many calls of each. Decoding
includes every check a malformed frame is caught by. Prints a table and writes it to
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import functools
import io
import statistics
import time

import numpy as np
from PIL import Image

from benchmarks.report import machine, write_section
from wire.scored_group import ActorCounters, GroupTimings, ScoredGroup, decode_group, encode_group

SIZES = {
    "bundled task (G=8 x 32 tokens, 0.3 KB image)": (8, 32, 300),
    "paper-sized (G=4 x 256 tokens, 50 KB image)": (4, 256, 50_000),
}


def example_png(size: int, rng: np.random.Generator) -> bytes:
    """A 56x56 PNG (the bundled task's size) padded with random bytes to `size`: readers stop at
    the PNG's end, so the image decodes and the frame is as large as a real image's."""
    buffer = io.BytesIO()
    Image.new("RGB", (56, 56), "white").save(buffer, format="PNG")
    return buffer.getvalue() + rng.bytes(max(0, size - buffer.tell()))


def example_group(group_size: int, tokens: int, image_bytes: int) -> ScoredGroup:
    rng = np.random.default_rng(0)
    return ScoredGroup(
        group_id="0" * 32,
        prompt_id="train-000001",
        actor_id=0,
        prompt_position=0,
        prompt_token_ids=rng.integers(0, 500, 64, dtype=np.int32),
        image_png=example_png(image_bytes, rng),
        completion_ids=tuple(rng.integers(0, 500, tokens, dtype=np.int32) for _ in range(group_size)),
        behaviour_logprobs=tuple(-rng.random(tokens, dtype=np.float32) for _ in range(group_size)),
        token_versions=tuple(np.full(tokens, 3, dtype=np.int32) for _ in range(group_size)),
        rewards=rng.random(group_size, dtype=np.float32),
        answers=tuple(("\\boxed{2}",) for _ in range(group_size)),
        timings=GroupTimings(0.5, 0.2, time.time()),
        counters=ActorCounters(10, 0, 0, 0, 0, 0, 0, 2, 0, 2),
    )


def _median_us(call, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1e6 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--record", action="store_true", help="write the table into BENCHMARKS.md")
    args = parser.parse_args()
    lines = ["| group | frame (KB) | encode p50 (µs) | decode p50 (µs) | decodes/s |", "|---|---|---|---|---|"]
    for name, size in SIZES.items():
        group = example_group(*size)
        frame = encode_group(group)
        encode_us = _median_us(functools.partial(encode_group, group), args.rounds)
        decode_us = _median_us(functools.partial(decode_group, frame), args.rounds)
        lines.append(
            f"| {name} | {len(frame) / 1024:.1f} | {encode_us:.0f} | {decode_us:.0f} | {1e6 / decode_us:.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.record:
        write_section("Replay codec", "python -m benchmarks.wire --record", machine(), table)


if __name__ == "__main__":
    main()
