"""Bound sockets advertise an endpoint peers can actually connect to."""

import zmq

from transport.sockets import bind


def test_a_wildcard_bind_advertises_this_nodes_address_and_peers_reach_it():
    context = zmq.Context.instance()
    server, client = context.socket(zmq.PULL), context.socket(zmq.PUSH)
    try:
        endpoint = bind(server, "0.0.0.0", 0)
        host = endpoint.removeprefix("tcp://").rsplit(":", 1)[0]
        assert host not in ("0.0.0.0", "*", "::")  # other nodes could not connect to those
        client.connect(endpoint)
        client.send(b"weights")
        assert server.poll(5000) and server.recv() == b"weights"
    finally:
        client.close(linger=0)
        server.close(linger=0)


def test_a_loopback_bind_stays_on_loopback():
    server = zmq.Context.instance().socket(zmq.PULL)
    try:
        assert bind(server, "127.0.0.1", 0).startswith("tcp://127.0.0.1:")
    finally:
        server.close(linger=0)
