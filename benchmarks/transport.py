"""Transport micro-benchmarks: the replay queue and the weight push against their raw floors.

    python -m benchmarks.transport [--rounds 5] [--record]

Replay: an actor-side process sends scored groups, the learner side (this process) takes them
out of the queue. Ours is the whole path (encode, ReplayClient's PUSH socket, ReplayQueue's
receiver thread with every decode check, the bounded buffer, `get`); the floor is raw ZeroMQ
PUSH/PULL of the same encoded bytes, no codec, no buffer.

Weight push: this process publishes a full set of weights, a receiving process takes them until
they are torch tensors it could load, and answers; latency is publish to answer. For the
bundled captioner's trainable weights and for ~100M random float32 parameters, over each
backend that runs without vLLM here (ZeroMQ: ZmqWeightPublisher -> ZmqWeightReceiver; gloo: the
broadcast group the gloo backend uses), against a plain in-memory copy of the same bytes.
Prints the tables; --record also writes them to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import time

import torch
import zmq
import zmq.asyncio

from actors.replay_client import ReplayClient
from actors.weight_receiver import ZmqWeightReceiver
from actors.weight_tensors import named_tensors
from benchmarks.report import machine, write_section
from benchmarks.stages import resent
from benchmarks.wire import example_group
from learner.admission import GroupAdmission, ImageCheck
from learner.replay import ReplayQueue
from learner.weight_publisher import ZmqWeightPublisher
from transport.gloo import GlooGroup, listening_socket
from wire.scored_group import decode_group, encode_group

# (name, group size, caption tokens, image bytes, groups sent)
REPLAY_PAYLOADS = (
    ("bundled task (4 KB)", 8, 32, 300, 4000),
    ("paper-sized (62 KB)", 4, 256, 50_000, 2000),
    ("large image (1 MB)", 4, 256, 1_000_000, 300),
)
PUSH_ROUNDS = 5
MB = 2**20
# The example groups' facts: token ids below 500, version 3, an image with no pad tokens for it.
EXAMPLE_ADMISSION = GroupAdmission(
    None, vocab_size=500, current_version=lambda: 3, image=ImageCheck(-1, lambda image: 0)
)


# ---- replay -------------------------------------------------------------------------------


def _send_groups(endpoint: str, path: str, size: tuple[int, int, int], count: int) -> None:
    """Child process: send `count` groups, through our client (`path` "ours") or raw bytes."""
    group = example_group(*size)
    if path == "ours":
        # Each a group of its own, at its own prompt position, as an actor's are: the queue drops
        # a group whose actor and position it has seen (a resend), so copies would never arrive.
        groups = [resent(group, i) for i in range(count)]

        async def send_all() -> None:
            client = ReplayClient([endpoint])
            for each in groups:
                await client.send(each)  # encodes each group, as an actor does
            client.close()

        asyncio.run(send_all())
        zmq.asyncio.Context.instance().term()  # returns once every frame has left
        return
    frame = encode_group(group)
    socket = zmq.Context.instance().socket(zmq.PUSH)
    socket.setsockopt(zmq.LINGER, -1)
    socket.connect(endpoint)
    for _ in range(count):
        socket.send(frame, copy=False)
    socket.close()
    zmq.Context.instance().term()  # returns once every frame has left


def _receive_ours(count: int) -> tuple[str, callable]:
    queue = ReplayQueue("127.0.0.1", 0, capacity_groups=32, capacity_bytes=256 * MB, admission=EXAMPLE_ADMISSION)

    def drain() -> float:
        first = queue.get(timeout=60)
        started = time.perf_counter()
        for _ in range(count - 1):
            if queue.get(timeout=60) is None:
                raise TimeoutError("replay benchmark: a group never arrived")
        seconds = time.perf_counter() - started
        queue.close()
        return seconds if first is not None else float("nan")

    return queue.endpoint, drain


def _receive_raw(count: int, decode: bool = False) -> tuple[str, callable]:
    """A plain PULL socket; with `decode`, each frame also goes through `decode_group` (the
    codec's share of our path, with every check)."""
    socket = zmq.Context.instance().socket(zmq.PULL)
    socket.setsockopt(zmq.LINGER, 0)
    port = socket.bind_to_random_port("tcp://127.0.0.1")

    def drain() -> float:
        socket.recv()
        started = time.perf_counter()
        for _ in range(count - 1):
            frame = socket.recv()
            if decode:
                decode_group(frame)
        seconds = time.perf_counter() - started
        socket.close()
        return seconds

    return f"tcp://127.0.0.1:{port}", drain


def replay_rate(path: str, size: tuple[int, int, int], count: int) -> float:
    """Groups per second from the first group taken to the last; `path`: ours, raw, raw+decode."""
    endpoint, drain = _receive_ours(count) if path == "ours" else _receive_raw(count, decode=path == "raw+decode")
    sender = mp.get_context("spawn").Process(
        target=_send_groups, args=(endpoint, "ours" if path == "ours" else "raw", size, count)
    )
    sender.start()
    seconds = drain()
    sender.join()
    return (count - 1) / seconds


def replay_table() -> str:
    lines = [
        "| payload | frame (KB) | ours groups/s | ours MB/s | raw ZeroMQ groups/s | raw MB/s | ours / raw | raw + "
        "decode groups/s | ours / (raw + decode) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, group_size, tokens, image_bytes, count in REPLAY_PAYLOADS:
        size = (group_size, tokens, image_bytes)
        frame_mb = len(encode_group(example_group(*size))) / MB
        ours, raw, decoded = (replay_rate(path, size, count) for path in ("ours", "raw", "raw+decode"))
        lines.append(
            f"| {name} | {frame_mb * 1024:.1f} | {ours:.0f} | {ours * frame_mb:.0f} | {raw:.0f} | "
            f"{raw * frame_mb:.0f} | "
            f"{ours / raw:.2f} | {decoded:.0f} | {ours / decoded:.2f} |"
        )
    return "\n".join(lines)


# ---- weight push --------------------------------------------------------------------------


def random_weights(parameters: int) -> dict[str, torch.Tensor]:
    """About `parameters` float32 parameters in 2048-wide matrices, as a 100M model's layers are."""
    rows = 4096
    count = max(1, round(parameters / (rows * 2048)))
    generator = torch.Generator().manual_seed(0)
    return {f"layers.{i}.weight": torch.randn(rows, 2048, generator=generator) for i in range(count)}


def captioner_weights() -> dict[str, torch.Tensor]:
    """The bundled captioner's trainable weights: what the learner pushes every step."""
    from transformers import AutoModelForImageTextToText

    from configs.load import load_config
    from driver.inputs import resolve_inputs

    model = AutoModelForImageTextToText.from_pretrained(resolve_inputs(load_config()).captioner, dtype=torch.float32)
    model.model.visual.requires_grad_(False)  # learner.freeze_vision, the default
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def _receive_zmq(endpoint: str, answer: str, rounds: int) -> None:
    """Child process: take `rounds` updates until they are torch tensors; answer each version."""
    receiver = ZmqWeightReceiver((endpoint,))
    replies = zmq.Context.instance().socket(zmq.PUSH)
    replies.connect(answer)
    taken = 0
    while taken < rounds:
        update = receiver.poll()
        if update is None:
            time.sleep(0.0005)
            continue
        named_tensors(update)
        replies.send(str(update.version).encode())
        taken += update.version >= 0
    receiver.close()
    replies.close(linger=2000)


def zmq_push_seconds(weights: dict[str, torch.Tensor], rounds: int) -> list[float]:
    publisher = ZmqWeightPublisher("127.0.0.1", 0)
    answers = zmq.Context.instance().socket(zmq.PULL)
    port = answers.bind_to_random_port("tcp://127.0.0.1")
    receiver = mp.get_context("spawn").Process(
        target=_receive_zmq, args=(publisher.source().endpoints[0], f"tcp://127.0.0.1:{port}", rounds)
    )
    receiver.start()
    # PUB/SUB drops what is sent before the subscriber has joined: announce until it answers.
    tiny = {"probe": torch.zeros(1)}
    while not answers.poll(200):
        publisher.publish(-1, tiny)
    while answers.poll(200):
        answers.recv()
    seconds = []
    for version in range(rounds):
        started = time.perf_counter()
        publisher.publish(version, weights)
        while int(answers.recv()) != version:
            pass
        seconds.append(time.perf_counter() - started)
    receiver.join()
    publisher.close()
    answers.close()
    return seconds


def _receive_gloo(port: int, answer: str, shapes: list[tuple[int, ...]], rounds: int) -> None:
    group = GlooGroup.join("127.0.0.1", port, 1, 2, timeout_s=120)
    replies = zmq.Context.instance().socket(zmq.PUSH)
    replies.connect(answer)
    buffers = [torch.empty(shape) for shape in shapes]
    for version in range(rounds):
        for buffer in buffers:
            group.broadcast(buffer)
        replies.send(str(version).encode())
    replies.close(linger=2000)


def gloo_push_seconds(weights: dict[str, torch.Tensor], rounds: int) -> list[float]:
    listener = listening_socket("127.0.0.1")
    port = listener.getsockname()[1]
    answers = zmq.Context.instance().socket(zmq.PULL)
    answer_port = answers.bind_to_random_port("tcp://127.0.0.1")
    shapes = [tuple(t.shape) for t in weights.values()]
    receiver = mp.get_context("spawn").Process(
        target=_receive_gloo, args=(port, f"tcp://127.0.0.1:{answer_port}", shapes, rounds)
    )
    receiver.start()
    group = GlooGroup.join("127.0.0.1", port, 0, 2, timeout_s=120, listener=listener)
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        for tensor in weights.values():
            group.broadcast(tensor)
        answers.recv()
        seconds.append(time.perf_counter() - started)
    receiver.join()
    answers.close()
    return seconds


def copy_seconds(weights: dict[str, torch.Tensor], rounds: int) -> list[float]:
    """A plain in-memory copy of the same tensors into fresh buffers."""
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        for tensor in weights.values():
            torch.empty_like(tensor).copy_(tensor)
        seconds.append(time.perf_counter() - started)
    return seconds


def push_table(models: dict[str, dict[str, torch.Tensor]], rounds: int) -> str:
    lines = [
        "| weights | size (MB) | path | latency p50 (ms) | bandwidth (MB/s) | vs in-memory copy |",
        "|---|---|---|---|---|---|",
    ]
    for name, weights in models.items():
        size_mb = sum(t.numel() * t.element_size() for t in weights.values()) / MB
        copy_s = statistics.median(copy_seconds(weights, rounds))
        paths = {
            "in-memory copy": copy_s,
            "zmq": statistics.median(zmq_push_seconds(weights, rounds)),
            "gloo broadcast": statistics.median(gloo_push_seconds(weights, rounds)),
        }
        for path, seconds in paths.items():
            lines.append(
                f"| {name} | {size_mb:.1f} | {path} | {1e3 * seconds:.1f} | {size_mb / seconds:.0f} | "
                f"{copy_s / seconds:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=PUSH_ROUNDS, help="weight pushes per backend and model")
    parser.add_argument("--record", action="store_true", help="write the table into BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    replay = replay_table()
    print(replay)
    models = {"bundled captioner": captioner_weights(), "100M parameters": random_weights(100_000_000)}
    push = push_table(models, args.rounds)
    print(push)
    where = machine()
    if args.record:
        write_section("Replay transport", "python -m benchmarks.transport --record", where, replay)
        write_section("Weight push", "python -m benchmarks.transport --record", where, push)


if __name__ == "__main__":
    main()
