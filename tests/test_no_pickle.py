"""Nothing that arrives over a socket is unpickled: ZeroMQ frames (replay, weights, broadcast
control) and HTTP bodies are msgpack, JSON or raw buffers.

Read from the source (a new `pickle` import, `recv_pyobj` or `torch.load` in a module that reads
the network fails here), and watched at run time (a real replay round trip and a weight update's
decode with every unpickling entry point made to raise).
"""

import ast
import asyncio
import pickle
from pathlib import Path

import numpy as np
import pytest

from actors.replay_client import ReplayClient
from learner.replay import ReplayQueue
from tests.test_messages import admission_for_made_groups, make_group
from wire.weights import RawTensor, WeightUpdate, decode_weight_update, encode_weight_update

REPO = Path(__file__).resolve().parents[1]
UNPICKLERS = {"pickle", "cloudpickle", "dill", "marshal", "shelve", "joblib"}
# Calls that unpickle what they are given: pyzmq's object helpers, torch's loader.
UNPICKLING_CALLS = {"recv_pyobj", "send_pyobj", "recv_serialized", "send_serialized"}
# Modules that read bodies from the network without importing zmq: the HTTP service.
HTTP_MODULES = {
    "serve/pool.py",
    "serve/chat.py",
    "serve/api_protocol.py",
    "serve/api_images.py",
    "serve/openai_reasoner.py",
}


def network_modules() -> list[Path]:
    """Every project module that touches a socket: imports zmq, or serves or calls HTTP."""
    found = []
    for path in sorted(REPO.glob("*/*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith(("tests/", ".venv/", "runs/")):
            continue
        if relative in HTTP_MODULES or any(module.split(".")[0] == "zmq" for module in _imports(path)):
            found.append(path)
    return found


def _imports(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.append(node.module)
    return modules


def _unpickling_uses(path: Path) -> list[str]:
    uses = [f"imports {m}" for m in _imports(path) if m.split(".")[0] in UNPICKLERS]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in UNPICKLING_CALLS:
            uses.append(f".{node.attr} at line {node.lineno}")
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "load"
            and isinstance(node.value, ast.Name)
            and node.value.id == "torch"
        ):
            uses.append(f"torch.load at line {node.lineno}")
    return uses


def test_the_network_modules_are_found():
    relative = {p.relative_to(REPO).as_posix() for p in network_modules()}
    # The replay queue's two ends, the weight sockets and the HTTP service, at least.
    assert {
        "learner/replay.py",
        "actors/replay_client.py",
        "learner/weight_publisher.py",
        "actors/weight_receiver.py",
        "serve/pool.py",
    } <= relative


def test_no_module_that_reads_the_network_unpickles():
    offenders = {p.relative_to(REPO).as_posix(): uses for p in network_modules() if (uses := _unpickling_uses(p))}
    assert offenders == {}


def test_the_scan_sees_an_unpickling_module(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import zmq\nimport pickle\n\ndef f(sock):\n    return sock.recv_pyobj()\n")
    assert _unpickling_uses(bad) == ["imports pickle", ".recv_pyobj at line 5"]


@pytest.fixture
def unpickling_forbidden(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("something unpickled a network payload")

    for name in ("loads", "load"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(np, "load", refuse)


def test_a_replay_round_trip_unpickles_nothing(unpickling_forbidden):
    queue = ReplayQueue("127.0.0.1", 0, capacity_groups=4, capacity_bytes=2**20, admission=admission_for_made_groups())
    client = ReplayClient([queue.endpoint])
    try:
        asyncio.run(client.send(make_group()))
        group = queue.get(timeout=5)
        assert group is not None and group.prompt_id == make_group().prompt_id
    finally:
        client.close()
        queue.close()


def test_a_weight_update_decodes_without_unpickling(unpickling_forbidden):
    data = np.arange(6, dtype=np.float32).tobytes()
    update = WeightUpdate(version=3, tensors=(RawTensor("w", "float32", (2, 3), data),))
    decoded = decode_weight_update([bytes(f) for f in encode_weight_update(update)])
    assert decoded.version == 3 and bytes(decoded.tensors[0].data) == data
