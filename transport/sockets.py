"""Binding the ZeroMQ sockets other processes connect to."""

from __future__ import annotations

import zmq

from transport.curve import CurveKeys, connect_securely, serve_securely, start_authenticator

# Bind addresses meaning "every interface": peers cannot connect to them as given.
WILDCARDS = ("0.0.0.0", "*", "::", "")


def advertised_host(host: str) -> str:
    """The address peers should connect to for a socket bound on `host`: the host itself, or,
    for a wildcard bind, this node's address as Ray's cluster knows it."""
    if host not in WILDCARDS:
        return host
    import ray.util

    return ray.util.get_node_ip_address()


def bind(socket: zmq.Socket, host: str, port: int, keys: CurveKeys | None = None) -> str:
    """Bind `socket` on `host` (port 0 = a free one) and return the endpoint peers connect to;
    with `keys`, as a CURVE server that admits only the keys' clients (transport/curve.py)."""
    if keys is not None:
        serve_securely(socket, keys)
        start_authenticator(socket.context, keys)
    address = "*" if host in WILDCARDS else host
    if port == 0:
        port = socket.bind_to_random_port(f"tcp://{address}")
    else:
        socket.bind(f"tcp://{address}:{port}")
    return f"tcp://{advertised_host(host)}:{port}"


def connect(socket: zmq.Socket, endpoints: list[str] | tuple[str, ...], keys: CurveKeys | None = None) -> None:
    """Connect `socket` to `endpoints`; with `keys`, as a CURVE client of the learner's sockets."""
    if keys is not None:
        connect_securely(socket, keys)
    for endpoint in endpoints:
        socket.connect(endpoint)
