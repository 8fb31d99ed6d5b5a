"""The image of a two-stage request: taken from a data: URL (or, when enabled, a remote one),
its size checked from the header before any pixel is decoded, so a decompression bomb costs
nothing. What comes back is the image file's bytes, for the captioner service to decode."""

from __future__ import annotations

import base64
import binascii
import http.client
import io

from PIL import Image, UnidentifiedImageError

from serve.api_protocol import ApiError
from serve.image_download import RefusedAddress, download

# The image formats a request may send: common, and decoded by Pillow's most used code. Others
# (TIFF, BMP, PSD, ICO ...) widen what a request can make the server parse, for no use here.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")


def image_bytes(url: str, max_pixels: int, max_bytes: int, allow_remote: bool) -> bytes:
    """The checked image file behind `url`, or an ApiError naming what is wrong with it."""
    if url.startswith("data:"):
        data = _from_data_url(url)
    elif url.startswith(("http://", "https://")):
        if not allow_remote:
            raise ApiError(
                400,
                "remote image URLs are refused; send the image as a data: URL (or enable "
                "serve.api.allow_remote_images)",
                param="image_url",
            )
        data = _download(url, max_bytes)
    else:
        raise ApiError(
            400, f"image_url must be a data: URL (or http(s) when enabled), got {url[:32]!r}", param="image_url"
        )
    check_image(data, max_pixels)
    return data


def check_image(data: bytes, max_pixels: int) -> None:
    """Refuse bytes that are no readable image of an allowed format, or an image over
    `max_pixels`, before decoding it in full."""
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            width, height = image.size  # from the header: nothing decoded yet
            if width * height > max_pixels:
                raise ApiError(
                    413,
                    f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels} "
                    "(serve.api.max_image_pixels)",
                    param="image_url",
                )
            image.load()
    except ApiError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise ApiError(
            400, f"image_url holds no readable {'/'.join(IMAGE_FORMATS)} image: {str(err)[:200]}", param="image_url"
        ) from None


def _from_data_url(url: str) -> bytes:
    header, _, payload = url.partition(",")
    if not header.startswith("data:image/") or not header.endswith(";base64"):
        raise ApiError(400, "image_url data: URLs must be data:image/<type>;base64,<data>", param="image_url")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "image_url's base64 payload is not valid base64", param="image_url") from None


def _download(url: str, max_bytes: int) -> bytes:
    try:
        data = download(url, max_bytes)
    except RefusedAddress as err:
        raise ApiError(400, f"image_url is refused: {err}", param="image_url") from None
    except (OSError, http.client.HTTPException, UnicodeError, ValueError) as err:  # a bad URL or reply, too
        raise ApiError(400, f"image_url could not be fetched: {str(err)[:200]}", param="image_url") from None
    if len(data) > max_bytes:
        raise ApiError(413, f"image at image_url is over {max_bytes} bytes", param="image_url")
    return data
