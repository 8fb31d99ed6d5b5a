"""The live API's bounds at its edges (serve/api_images.py, serve/image_download.py): image
formats, and remote images that cannot reach the server's own network."""

from __future__ import annotations

import io
import ipaddress
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from serve.api_images import check_image
from serve.api_protocol import ApiError
from serve.image_download import RefusedAddress, check_public, download


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_the_four_common_formats_are_taken(fmt):
    check_image(_image(fmt), max_pixels=64)


@pytest.mark.parametrize("fmt", ["TIFF", "BMP", "ICO"])
def test_other_formats_are_refused_naming_the_allowed_ones(fmt):
    with pytest.raises(ApiError, match="no readable PNG/JPEG/WEBP/GIF image") as refused:
        check_image(_image(fmt), max_pixels=64)
    assert refused.value.status == 400


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "192.168.0.7", "172.16.0.1", "169.254.169.254", "::1", "fe80::1", "0.0.0.0", "224.0.0.1"],
)
def test_a_url_whose_host_is_not_public_is_refused(address):
    with pytest.raises(RefusedAddress, match="not a public address"):
        check_public("http://images.example/cat.png", resolve=lambda host: [ipaddress.ip_address(address)])


def test_a_public_host_passes_and_every_address_of_it_must_be_public():
    check_public("https://images.example/cat.png", resolve=lambda host: [ipaddress.ip_address("93.184.216.34")])
    with pytest.raises(RefusedAddress):
        check_public(
            "https://images.example/cat.png",
            resolve=lambda host: [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.1")],
        )
    with pytest.raises(RefusedAddress, match="only http"):
        check_public("file:///etc/passwd")


class _Server(BaseHTTPRequestHandler):
    """/image: a PNG; /hop: a redirect to the same server under the name localhost."""

    def do_GET(self):  # noqa: N802 - the handler's name is http.server's
        if self.path == "/hop":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_port}/image")
            self.end_headers()
            return
        body = _image("PNG")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_redirect_to_an_inside_address_is_refused_before_it_is_followed():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # The test's resolver calls 127.0.0.1 public (so the server can stand in for one on the
    # internet), and localhost, where the redirect points, what it is.
    names = {"127.0.0.1": "93.184.216.34", "localhost": "127.0.0.1"}
    resolve = lambda host: [ipaddress.ip_address(names[host])]  # noqa: E731
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert Image.open(io.BytesIO(download(f"{base}/image", 10_000, resolve))).size == (8, 8)
        with pytest.raises(RefusedAddress, match="localhost resolves to 127.0.0.1, which is not a public address"):
            download(f"{base}/hop", 10_000, resolve)
    finally:
        server.shutdown()


def test_an_unexpected_failure_answers_500_with_an_error_id_and_no_internals(caplog):
    from serve.api_protocol import internal_error

    try:
        raise RuntimeError("/secret/path/model.bin: internals")
    except RuntimeError:
        error = internal_error("/v1/chat/completions")
    message = error.body()["error"]["message"]
    assert error.status == 500 and "internals" not in message and "secret" not in message
    error_id = message.split("error id ")[1].split(")")[0]
    assert len(error_id) == 12 and f"error id {error_id}" in caplog.text and "internals" in caplog.text
