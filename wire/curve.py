"""ZeroMQ CURVE for the replay and weight sockets: encryption, and only known actors let in.

Off by default (loopback needs neither). For a cluster, `python launch.py keys out=DIR` makes two
key pairs in DIR: the learner's (`server`) and the actors' (`client`); set `curve.keys_dir=DIR`
and make DIR readable on every node (a shared file system, or a copy). The learner's sockets
are CURVE servers with its secret key, and a ZAP handler admits only clients whose public key is
in DIR; the actors' sockets are CURVE clients that know the server's public key. A peer without
CURVE, or with another key pair, never gets a frame through: ZeroMQ drops it in the handshake.
Secret keys live only in DIR (mode 0600), never in a config file or the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

SERVER, CLIENT = "server", "client"


@dataclass(frozen=True)
class CurveKeys:
    server_public: bytes
    server_secret: bytes | None  # None where its file is absent
    client_public: bytes
    client_secret: bytes | None  # None where its file is absent
    directory: str  # where the public keys of the admitted clients are


def generate_keys(directory: Path) -> None:
    """The learner's and the actors' key pairs in `directory` (secrets readable by the owner only)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in (SERVER, CLIENT):
        if (directory / f"{name}.key_secret").exists():
            raise FileExistsError(f"{directory / name}.key_secret exists: remove it to make new keys")
        zmq.auth.create_certificates(str(directory), name)
        os.chmod(directory / f"{name}.key_secret", 0o600)


def load_keys(directory: str) -> CurveKeys:
    """The key pairs in `directory`, or a clear error naming what is missing."""
    path = Path(directory)
    pairs = {}
    for name in (SERVER, CLIENT):
        secret_file, public_file = path / f"{name}.key_secret", path / f"{name}.key"
        if not public_file.is_file():
            raise FileNotFoundError(f"curve.keys_dir={directory} lacks {public_file.name}: make keys with `python launch.py keys out={directory}`")
        pairs[name] = zmq.auth.load_certificate(str(secret_file if secret_file.is_file() else public_file))
    return CurveKeys(*pairs[SERVER], *pairs[CLIENT], directory=str(path))


def serve_securely(socket: zmq.Socket, keys: CurveKeys) -> None:
    """Make `socket` (before it binds) a CURVE server; `start_authenticator` decides who gets in."""
    if keys.server_secret is None:
        raise FileNotFoundError(f"{keys.directory} lacks server.key_secret: the learner's node needs it")
    socket.curve_secretkey = keys.server_secret
    socket.curve_publickey = keys.server_public
    socket.curve_server = True


def connect_securely(socket: zmq.Socket, keys: CurveKeys) -> None:
    """Make `socket` (before it connects) a CURVE client of the learner's sockets."""
    if keys.client_secret is None:
        raise FileNotFoundError(f"{keys.directory} lacks client.key_secret: every actor's node needs it")
    socket.curve_secretkey = keys.client_secret
    socket.curve_publickey = keys.client_public
    socket.curve_serverkey = keys.server_public


_authenticators: dict[int, ThreadAuthenticator] = {}


def start_authenticator(context: zmq.Context, keys: CurveKeys) -> None:
    """Admit only clients whose public key is in the keys directory, on every CURVE server socket
    of `context` (one handler per context, started once)."""
    if id(context) in _authenticators:
        return
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=keys.directory)
    _authenticators[id(context)] = authenticator
