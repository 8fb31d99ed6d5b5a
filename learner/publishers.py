"""The weight publisher of the configured backend: ZeroMQ (the default), or a gloo or NCCL
broadcast straight into vLLM engines. Apart from both implementations, so that neither module
imports the other."""

from __future__ import annotations

from configs.schema import WeightSyncConfig
from learner.weight_broadcast import BroadcastWeightPublisher
from learner.weight_publisher import WeightPublisher, ZmqWeightPublisher
from transport.curve import CurveKeys


def make_publisher(config: WeightSyncConfig, receivers: int, keys: CurveKeys | None = None) -> WeightPublisher:
    """The publisher of `config.backend`, for `receivers` rollout actors (CURVE with `keys`)."""
    if config.backend == "zmq":
        return ZmqWeightPublisher(config.host, config.port, keys)
    return BroadcastWeightPublisher(config.backend, config.host, config.port, receivers, config.timeout_s, keys)
