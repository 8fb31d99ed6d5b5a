"""Fetching a remote image for the live API (serve.api.allow_remote_images), without letting a
request reach what the server can but its caller should not.

Every address a URL's host resolves to must be a public one: loopback, private, link-local,
multicast, reserved and unspecified addresses are refused (a cloud metadata service lives at a
link-local one), and so is every redirect's target, checked before it is followed, at most
MAX_REDIRECTS of them. The host is resolved again when the request connects, so a name that
resolves differently between the check and the connection (DNS rebinding) is not ruled out:
leave remote images off where that matters; data: URLs need no fetch at all.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
import urllib.request
from collections.abc import Callable

MAX_REDIRECTS = 3
TIMEOUT_S = 10.0


class RefusedAddress(ValueError):
    """A URL whose host is not a public address (or that cannot be resolved)."""


def _resolved(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as err:
        raise RefusedAddress(f"{host!r} does not resolve: {err}") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_public(url: str, resolve: Callable[[str], list] = _resolved) -> None:
    """Raise RefusedAddress unless `url` is http(s) and every address of its host is public."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedAddress(f"only http(s) URLs with a host are fetched, not {url[:64]!r}")
    for address in resolve(parts.hostname):
        if not address.is_global or address.is_multicast:
            raise RefusedAddress(f"{parts.hostname} resolves to {address}, which is not a public address")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def __init__(self, resolve: Callable[[str], list]):
        self.resolve = resolve

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_public(newurl, self.resolve)  # before the redirect is followed
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def download(url: str, max_bytes: int, resolve: Callable[[str], list] = _resolved) -> bytes:
    """The bytes at `url` (at most `max_bytes` + 1 read), if it and every redirect are public.
    Raises RefusedAddress, or OSError for a failed fetch."""
    check_public(url, resolve)
    opener = urllib.request.build_opener(_CheckedRedirects(resolve))
    with opener.open(url, timeout=TIMEOUT_S) as response:  # a refused redirect raises out of here
        return response.read(max_bytes + 1)
