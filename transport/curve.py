"""ZeroMQ CURVE for the replay and weight sockets: encryption, and only known actors let in.

Off by default (loopback needs neither). For a cluster, `python launch.py keys out=DIR` makes the
learner's key pair (`server`) in DIR and the actors' (`clients/client`), and with `actors=N` one
pair per actor as well (`clients/actor-<i>`, taken by actor i instead of the shared one); set
`curve.keys_dir=DIR` and make DIR readable on every node (a shared file system, or a copy). The
learner's sockets are CURVE servers with its secret key, and a ZAP handler admits only clients
whose public key is in DIR/clients: the server's own pair is no client. The actors' sockets are
CURVE clients that know the server's public key. A peer without CURVE, or with another key
pair, never gets a frame through: ZeroMQ drops it in the handshake. Secret keys live only in DIR
(mode 0600), never in a config file or the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

SERVER, CLIENT, CLIENTS = "server", "client", "clients"


@dataclass(frozen=True)
class CurveKeys:
    server_public: bytes
    server_secret: bytes | None  # None where its file is absent
    client_public: bytes | None  # None where this process is no client (the learner's)
    client_secret: bytes | None  # None where its file is absent
    directory: str  # DIR/clients: the public keys of the admitted clients


def _create_pair(directory: Path, name: str) -> None:
    if (directory / f"{name}.key_secret").exists():
        raise FileExistsError(f"{directory / name}.key_secret exists: remove it to make new keys")
    directory.mkdir(parents=True, exist_ok=True)
    zmq.auth.create_certificates(str(directory), name)
    os.chmod(directory / f"{name}.key_secret", 0o600)


def generate_keys(directory: Path, actors: int = 0) -> None:
    """The learner's pair in `directory`, the actors' shared pair and `actors` own ones in its
    clients/ folder (secrets readable by the owner only)."""
    _create_pair(directory, SERVER)
    for name in (CLIENT, *(f"actor-{i}" for i in range(actors))):
        _create_pair(directory / CLIENTS, name)


def load_keys(directory: str, actor_id: int | None = None) -> CurveKeys:
    """The learner's keys in `directory` and, for `actor_id`, that actor's own pair if it has one
    (clients/actor-<id>), else the shared one (clients/client); or a clear error naming what is missing."""
    path = Path(directory)
    make = f"make keys with `python launch.py keys out={directory}`"
    if (path / f"{CLIENT}.key").is_file() and not (path / CLIENTS).is_dir():
        raise FileNotFoundError(
            f"curve.keys_dir={directory} holds keys in an older layout (no clients/ folder): {make}"
        )
    server_public, server_secret = _pair(path, SERVER, directory, make)
    client_public = client_secret = None
    if actor_id is not None:
        own = f"actor-{actor_id}"
        client_public, client_secret = _pair(
            path / CLIENTS, own if (path / CLIENTS / f"{own}.key").is_file() else CLIENT, directory, make
        )
    return CurveKeys(server_public, server_secret, client_public, client_secret, directory=str(path / CLIENTS))


def _pair(folder: Path, name: str, directory: str, make: str) -> tuple[bytes, bytes | None]:
    secret_file, public_file = folder / f"{name}.key_secret", folder / f"{name}.key"
    if not public_file.is_file():
        raise FileNotFoundError(f"curve.keys_dir={directory} lacks {public_file.relative_to(directory)}: {make}")
    return zmq.auth.load_certificate(str(secret_file if secret_file.is_file() else public_file))


def serve_securely(socket: zmq.Socket, keys: CurveKeys) -> None:
    """Make `socket` (before it binds) a CURVE server; `start_authenticator` decides who gets in."""
    if keys.server_secret is None:
        raise FileNotFoundError(f"{keys.directory} lacks server.key_secret: the learner's node needs it")
    socket.curve_secretkey = keys.server_secret
    socket.curve_publickey = keys.server_public
    socket.curve_server = True


def connect_securely(socket: zmq.Socket, keys: CurveKeys) -> None:
    """Make `socket` (before it connects) a CURVE client of the learner's sockets."""
    if keys.client_public is None or keys.client_secret is None:
        raise FileNotFoundError(
            f"{keys.directory} lacks this actor's client key_secret: every actor's node needs its pair"
        )
    socket.curve_secretkey = keys.client_secret
    socket.curve_publickey = keys.client_public
    socket.curve_serverkey = keys.server_public


_authenticators: dict[int, ThreadAuthenticator] = {}


def start_authenticator(context: zmq.Context, keys: CurveKeys) -> None:
    """Admit only clients whose public key is in the keys' clients folder, on every CURVE server
    socket of `context` (one handler per context, started once; the latest keys' folder is the
    one it admits from: a process serves one run)."""
    authenticator = _authenticators.get(id(context))
    if authenticator is None:
        authenticator = ThreadAuthenticator(context)
        authenticator.start()
        _authenticators[id(context)] = authenticator
    authenticator.configure_curve(domain="*", location=keys.directory)
