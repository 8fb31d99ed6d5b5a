"""What listens beyond loopback, and whether it may: every socket binds loopback unless
configured otherwise, and one configured beyond it must be protected or explicitly allowed.

- The replay queue and the weight socket (`learner.replay.host`, `learner.weight_sync.host`):
  beyond loopback they need ZeroMQ CURVE (`curve.keys_dir`), else anyone who reaches the port
  can feed the learner groups or the actors weights.
- The live HTTP API (`serve.http_host`, when it serves): beyond loopback it needs a bearer token
  (the variable `serve.api.api_key_env` names, set in the environment).

Each may instead be allowed explicitly (`<section>.allow_insecure=true`, on a network you trust):
the run then starts and warns once, naming the socket.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from configs.schema import TrainConfig


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


@dataclass(frozen=True)
class Exposure:
    refused: tuple[str, ...]  # sockets beyond loopback, unprotected and not allowed: the run must not start
    warnings: tuple[str, ...]  # the same, explicitly allowed


def exposure(config: TrainConfig, environ: Mapping[str, str], serves_http: bool) -> Exposure:
    refused, warnings = [], []

    def judge(name: str, host: str, protected: bool, allowed: bool, protect: str) -> None:
        if is_loopback(host) or protected:
            return
        text = f"{name}={host} listens beyond loopback without {protect}"
        if allowed:
            warnings.append(f"{text} (allowed by {name.rsplit('.', 1)[0]}.allow_insecure)")
        else:
            refused.append(
                f"{text}: set {protect}, or {name.rsplit('.', 1)[0]}.allow_insecure=true on a network you trust"
            )

    curve = bool(config.curve.keys_dir)
    replay, weights, api = config.learner.replay, config.learner.weight_sync, config.serve.api
    judge("learner.replay.host", replay.host, curve, replay.allow_insecure, "curve.keys_dir")
    judge("learner.weight_sync.host", weights.host, curve, weights.allow_insecure, "curve.keys_dir")
    if serves_http:
        token = bool(environ.get(api.api_key_env))
        judge("serve.http_host", config.serve.http_host, token, api.allow_insecure, f"a token (${api.api_key_env})")
    return Exposure(tuple(refused), tuple(warnings))
