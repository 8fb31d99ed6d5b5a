"""ZeroMQ CURVE on the replay and weight sockets: the right keys get through, a client with
another key pair or none is refused in the handshake, and the keys come from `launch.py keys`."""

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from actors.replay_client import ReplayClient
from actors.weight_receiver import ZmqWeightReceiver
from learner.replay import ReplayQueue
from learner.weight_publisher import ZmqWeightPublisher
from tests.test_messages import admission_for_made_groups, make_group
from transport.curve import generate_keys, load_keys

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """The run's keys, made by the documented command, and another pair nobody admitted."""
    ours, theirs = tmp_path_factory.mktemp("keys"), tmp_path_factory.mktemp("other-keys")
    made = subprocess.run(
        [sys.executable, "launch.py", "keys", f"out={ours}"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert made.returncode == 0, made.stderr
    assert (ours / "server.key_secret").stat().st_mode & 0o077 == 0  # secrets: owner only
    generate_keys(theirs)
    return load_keys(str(ours), actor_id=0), load_keys(str(theirs), actor_id=0)


def delivered(queue: ReplayQueue, client: ReplayClient, position: int, wait_s: float) -> bool:
    async def send() -> None:
        await asyncio.wait_for(client.send(make_group(prompt_position=position)), timeout=wait_s)

    try:
        asyncio.run(send())
    except TimeoutError:
        pass  # a send that cannot complete: nobody took the frame
    return queue.get(timeout=wait_s) is not None


def gets_through(server_keys, client_keys) -> bool:
    """Whether a group a client holding `client_keys` sends reaches a queue serving `server_keys`."""
    queue = ReplayQueue(
        "127.0.0.1", 0, capacity_groups=8, capacity_bytes=2**20, admission=admission_for_made_groups(), keys=server_keys
    )
    client = ReplayClient([queue.endpoint], client_keys)
    try:
        return delivered(queue, client, 0, wait_s=2)
    finally:
        client.close()
        queue.close()


def test_the_replay_socket_takes_only_the_admitted_key(keys):
    ours, theirs = keys
    queue = ReplayQueue(
        "127.0.0.1", 0, capacity_groups=8, capacity_bytes=2**20, admission=admission_for_made_groups(), keys=ours
    )
    clients = {
        "ours": ReplayClient([queue.endpoint], ours),
        "theirs": ReplayClient([queue.endpoint], theirs),
        "plain": ReplayClient([queue.endpoint]),
    }
    try:
        assert delivered(queue, clients["ours"], 0, wait_s=5)
        assert not delivered(queue, clients["theirs"], 1, wait_s=2)  # another server key: no handshake
        assert not delivered(queue, clients["plain"], 2, wait_s=2)  # no CURVE at all
        assert queue.counters.accepted == 1 and queue.counters.rejected == 0
    finally:
        for client in clients.values():
            client.close()
        queue.close()


def test_a_client_with_the_servers_key_but_an_unknown_own_key_is_refused(keys, tmp_path):
    # It knows the learner's public key (the handshake's first half) but its own pair is not
    # admitted: the learner's authenticator refuses it.
    ours, _ = keys
    stranger = tmp_path / "stranger"
    generate_keys(stranger)
    impostor = load_keys(str(stranger), actor_id=0)
    impostor = type(impostor)(ours.server_public, None, impostor.client_public, impostor.client_secret, str(stranger))
    assert not gets_through(ours, impostor)


def test_weights_reach_only_the_admitted_key(keys):
    ours, theirs = keys
    publisher = ZmqWeightPublisher("127.0.0.1", 0, ours)
    receivers = {
        "ours": ZmqWeightReceiver(publisher.source().endpoints, ours),
        "theirs": ZmqWeightReceiver(publisher.source().endpoints, theirs),
    }
    try:
        publisher.publish(3, {"w": torch.ones(4)})  # new subscribers get it when they join
        got: dict[str, int] = {}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "ours" not in got:
            for name, receiver in receivers.items():
                update = receiver.poll()
                if update is not None:
                    got[name] = update.version
            time.sleep(0.05)
        assert got == {"ours": 3}
    finally:
        for receiver in receivers.values():
            receiver.close()
        publisher.close()


def test_keys_are_never_overwritten_and_a_missing_file_is_named(tmp_path):
    generate_keys(tmp_path)
    with pytest.raises(FileExistsError, match="server.key_secret exists"):
        generate_keys(tmp_path)
    (tmp_path / "clients" / "client.key").unlink()
    with pytest.raises(FileNotFoundError, match="lacks clients/client.key: make keys with `python launch.py keys"):
        load_keys(str(tmp_path), actor_id=0)
    load_keys(str(tmp_path))  # the learner needs no client pair


def test_the_servers_own_pair_is_no_client(keys):
    ours, _ = keys
    server_as_client = type(ours)(ours.server_public, None, ours.server_public, ours.server_secret, ours.directory)
    assert not gets_through(ours, server_as_client)


def test_an_actor_with_its_own_pair_gets_in_with_it_and_the_others_keep_the_shared_one(tmp_path):
    made = subprocess.run(
        [sys.executable, "launch.py", "keys", f"out={tmp_path}", "actors=2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    server = load_keys(str(tmp_path))
    first, shared = load_keys(str(tmp_path), actor_id=1), load_keys(str(tmp_path), actor_id=5)
    assert first.client_public != shared.client_public
    assert shared.client_public == (tmp_path / "clients" / "client.key").read_bytes().split(b'public-key = "')[1][:40]
    queue = ReplayQueue(
        "127.0.0.1", 0, capacity_groups=8, capacity_bytes=2**20, admission=admission_for_made_groups(), keys=server
    )
    clients = [ReplayClient([queue.endpoint], keys) for keys in (first, shared)]
    try:
        assert delivered(queue, clients[0], 0, wait_s=5) and delivered(queue, clients[1], 1, wait_s=5)
    finally:
        for client in clients:
            client.close()
        queue.close()
