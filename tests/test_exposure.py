"""Nothing listens beyond loopback unprotected unless allowed (configs/exposure.py), and the
rendezvous stores bind the configured host, not every interface (transport/gloo.py)."""

from __future__ import annotations

import datetime

import psutil
import pytest

from configs.exposure import exposure, is_loopback
from configs.load import load_config
from transport.gloo import listening_socket, rendezvous_store

WIDE = ["learner.replay.host=0.0.0.0", "learner.weight_sync.host=10.0.0.5"]


def test_loopback_is_told_from_everything_else():
    assert is_loopback("127.0.0.1") and is_loopback("127.3.2.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5") and not is_loopback("head.cluster")


def test_zeromq_sockets_beyond_loopback_need_curve_or_an_explicit_allow():
    found = exposure(load_config(None, WIDE), {}, serves_http=False)
    assert len(found.refused) == 2 and not found.warnings
    assert "learner.replay.host=0.0.0.0 listens beyond loopback without curve.keys_dir" in found.refused[0]
    assert "learner.weight_sync.allow_insecure=true" in found.refused[1]
    assert exposure(load_config(None, [*WIDE, "curve.keys_dir=/keys"]), {}, serves_http=False) == exposure(
        load_config(None, []), {}, False
    )
    allowed = exposure(
        load_config(None, [*WIDE, "learner.replay.allow_insecure=true", "learner.weight_sync.allow_insecure=true"]),
        {},
        False,
    )
    assert (
        not allowed.refused
        and len(allowed.warnings) == 2
        and "allowed by learner.replay.allow_insecure" in allowed.warnings[0]
    )


def test_the_http_api_beyond_loopback_needs_a_token_or_an_explicit_allow():
    config = load_config(None, ["serve.http_host=0.0.0.0"])
    assert (
        "serve.http_host=0.0.0.0 listens beyond loopback without a token ($CAPTION_RL_API_KEY)"
        in exposure(config, {}, True).refused[0]
    )
    assert exposure(config, {"CAPTION_RL_API_KEY": "s3cret"}, True).refused == ()
    assert exposure(config, {}, serves_http=False).refused == ()  # no HTTP served: nothing listens
    allowed = load_config(None, ["serve.http_host=0.0.0.0", "serve.api.allow_insecure=true"])
    assert exposure(allowed, {}, True).refused == () and exposure(allowed, {}, True).warnings


def test_a_run_refuses_to_start_with_an_unprotected_socket_naming_it(run_launch):
    code, out = run_launch(["learner.replay.host=0.0.0.0"]).finish(timeout=60)
    assert code == 2
    assert "learner.replay.host=0.0.0.0 listens beyond loopback without curve.keys_dir" in out


def _listening_addresses(port: int) -> set[str]:
    return {
        c.laddr.ip for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


def test_a_rendezvous_store_listens_on_the_configured_host_only():
    listener = listening_socket("127.0.0.1")
    port = listener.getsockname()[1]
    store = rendezvous_store("127.0.0.1", port, 2, datetime.timedelta(seconds=10), listener)
    member = rendezvous_store("127.0.0.1", port, 2, datetime.timedelta(seconds=10), None)
    member.set("k", "v")
    assert store.get("k") == b"v"
    assert _listening_addresses(port) == {"127.0.0.1"}  # not 0.0.0.0, as torch's own server binds
    with pytest.raises(OSError):  # the port is taken on loopback, by the store and nobody else
        listening_socket("127.0.0.1", port)
