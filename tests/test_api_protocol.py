"""The live API's request checks and helpers, without a server: what is refused, and how."""

import base64
import io

import pytest
from PIL import Image

from serve.api_images import image_bytes
from serve.api_protocol import ApiError, parse_chat_request
from serve.completion import cut_at_stop


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def _data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("text", "stop", "expected"),
    [
        ("a b \\boxed{3} c", ("\\boxed",), ("a b ", True)),
        ("a b c", ("x",), ("a b c", False)),
        ("one. two! three.", (".", "!"), ("one", True)),  # the earliest of several
        ("two! three.", (".", "!"), ("two", True)),
        ("abc", ("",), ("abc", False)),  # an empty stop string stops nothing
    ],
)
def test_cut_at_stop(text, stop, expected):
    assert cut_at_stop(text, stop) == expected


def test_a_request_takes_openai_fields_and_defaults():
    chat = parse_chat_request(
        b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stop": "x", '
        b'"max_completion_tokens": 9, "user": "ignored"}'
    )
    params = chat.params(default_max_tokens=40)
    assert (params.stop, params.max_tokens, params.n, params.temperature, params.top_p, params.seed) == (
        ("x",),
        9,
        1,
        1.0,
        1.0,
        None,
    )
    assert (
        parse_chat_request(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}').params(40).max_tokens
        == 40
    )


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"{not json", "body"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "m", "messages": []}', "messages"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 3}', "temperature"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "top_p": 0}', "top_p"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 0}', "n"),
        (b'{"model": "m", "messages": [{"role": "robot", "content": "hi"}]}', "messages.0.role"),
    ],
)
def test_a_bad_request_is_a_400_naming_the_field(body, names):
    with pytest.raises(ApiError) as caught:
        parse_chat_request(body)
    assert caught.value.status == 400
    assert caught.value.param == names
    assert caught.value.body()["error"]["type"] == "invalid_request_error"


def test_an_image_within_bounds_comes_back_as_its_bytes():
    data = _png(30, 20)
    assert image_bytes(_data_url(data), max_pixels=600, max_bytes=10**6, allow_remote=False) == data


def test_an_image_over_the_pixel_bound_is_refused_before_decoding():
    # 31 x 20 = 620 pixels, one column over 600.
    with pytest.raises(ApiError, match="31x20 = 620 pixels, over the limit of 600") as caught:
        image_bytes(_data_url(_png(31, 20)), max_pixels=600, max_bytes=10**6, allow_remote=False)
    assert caught.value.status == 413


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.invalid/cat.png", "remote image URLs are refused"),
        ("data:image/png;base64,@@@", "not valid base64"),
        ("data:text/plain;base64,aGk=", "data:image/<type>;base64"),
        (_data_url(b"not an image at all"), "no readable PNG/JPEG/WEBP/GIF image"),
        (_data_url(_png(30, 20)[:60]), "no readable PNG/JPEG/WEBP/GIF image"),  # cut short
        ("file:///etc/passwd", "must be a data: URL"),
    ],
)
def test_a_bad_image_is_a_400_naming_the_problem(url, message):
    with pytest.raises(ApiError, match=message) as caught:
        image_bytes(url, max_pixels=10**6, max_bytes=10**6, allow_remote=False)
    assert caught.value.status == 400
