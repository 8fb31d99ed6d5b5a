"""Binding the ZeroMQ sockets other processes connect to."""

from __future__ import annotations

import zmq


def bind(socket: zmq.Socket, host: str, port: int) -> str:
    """Bind `socket` on `host` (port 0 = a free one) and return the endpoint peers connect to."""
    if port == 0:
        port = socket.bind_to_random_port(f"tcp://{host}")
    else:
        socket.bind(f"tcp://{host}:{port}")
    return f"tcp://{host}:{port}"
