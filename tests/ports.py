"""A port for a test server that nothing else on the machine is about to take.

Picking a free port and binding it later is a race: the kernel hands out its ephemeral ports
(32768-60999 on Linux) to anyone binding port 0 meanwhile, Ray's processes included, and Ray's
workers take ports 10002-19999. A free port between the two is only taken by someone asking
for it by number.
"""

import random
import socket

_RANGE = (20000, 32000)


def unclaimed_port(host: str = "127.0.0.1") -> int:
    for port in random.sample(range(*_RANGE), 200):
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_RANGE}")
