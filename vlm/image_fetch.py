"""Loading one image the way RACRO's inference does: qwen-vl-utils' `fetch_image`.

RACRO builds its vision inputs with `qwen_vl_utils.process_vision_info`, whose per-image step
takes a local path, a `file://` URI, an http(s) URL, a `data:image...;base64,` URI or a PIL
image, converts it to RGB (RGBA on a white background) and resizes it so both sides are
multiples of 28 (14 px patches merged 2x2) and the area lies in [min_pixels, max_pixels].

qwen-vl-utils imports torchvision at module top (for videos only), so on our CPU machines, where
no torchvision loads, it cannot be imported. This is the one place that knows: where
torchvision imports we call the real `qwen_vl_utils.fetch_image`; elsewhere the same rule,
re-implemented below from qwen-vl-utils 0.0.14 (the pinned version).
"""

from __future__ import annotations

import base64
import io
import math
import urllib.request
from pathlib import Path

from PIL import Image

PATCH_FACTOR = 28  # Qwen2.5-VL: 14 px patches, merged 2x2, so sides are multiples of 28
MIN_PIXELS = 4 * PATCH_FACTOR**2  # qwen-vl-utils' default: at least 4 vision tokens (56 x 56)
MAX_PIXELS = 16384 * PATCH_FACTOR**2  # qwen-vl-utils' default: at most 16384 vision tokens
MAX_ASPECT_RATIO = 200  # qwen-vl-utils refuses longer/shorter side ratios above this
# Pixels an image file may declare before anything is decoded (Pillow's own decompression-bomb
# threshold): a few hundred bytes of PNG can declare gigapixels.
MAX_SOURCE_PIXELS = Image.MAX_IMAGE_PIXELS
_URL_TIMEOUT_S = 60.0

ImageSource = str | Path | Image.Image


def fetch_image(source: ImageSource, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """`source` as an RGB image resized by qwen-vl-utils' rule (see `smart_resize`).

    `source`: a PIL image, a local path, `file://<path>`, `http(s)://...` or a
    `data:image/...;base64,...` URI. Unreadable images raise OSError (a failed download
    included) or ValueError (an unrecognised source, a bad base64 payload).
    """
    # Imported here, not at the top: it loads transformers, and `records.vqa`, which role
    # packages import, imports this module.
    from vlm.processor import torchvision_available

    if isinstance(source, Path):
        source = str(source)  # qwen-vl-utils takes strings only
    if torchvision_available():
        import qwen_vl_utils

        return qwen_vl_utils.fetch_image({"image": source, "min_pixels": min_pixels, "max_pixels": max_pixels})
    image = _as_rgb(_open(source))
    width, height = image.size
    resized_height, resized_width = smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
    # qwen-vl-utils calls `resize` without a filter: Pillow's default for RGB, bicubic.
    return image.resize((resized_width, resized_height), Image.Resampling.BICUBIC)


def smart_resize(
    height: int, width: int, factor: int = PATCH_FACTOR, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
) -> tuple[int, int]:
    """(height, width) rounded to multiples of `factor`, area brought into [min_pixels, max_pixels].

    Each side first goes to its nearest multiple of `factor` (Python's `round`, so an exact
    half goes to the even multiple: 70 = 2.5 x 28 becomes 56), at least `factor`. If that
    area is too large, both sides are scaled by the same factor to fit and rounded down; if
    too small, scaled up and rounded up. The aspect ratio is kept as closely as the rounding
    allows.
    """
    if max_pixels < min_pixels:
        raise ValueError(f"max_pixels ({max_pixels}) must be at least min_pixels ({min_pixels})")
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_ASPECT_RATIO:
        raise ValueError(f"image aspect ratio {ratio:.1f} exceeds {MAX_ASPECT_RATIO}")
    new_height = max(factor, round(height / factor) * factor)
    new_width = max(factor, round(width / factor) * factor)
    if new_height * new_width > max_pixels:
        shrink = math.sqrt(height * width / max_pixels)  # scaling the original by 1/shrink gives max_pixels
        new_height = math.floor(height / shrink / factor) * factor
        new_width = math.floor(width / shrink / factor) * factor
    elif new_height * new_width < min_pixels:
        grow = math.sqrt(min_pixels / (height * width))  # scaling the original by grow gives min_pixels
        new_height = math.ceil(height * grow / factor) * factor
        new_width = math.ceil(width * grow / factor) * factor
    return new_height, new_width


def _open(source: str | Image.Image) -> Image.Image:
    """The decoded image behind `source`, its pixels loaded (no file left open)."""
    if isinstance(source, Image.Image):
        return source
    if source.startswith(("http://", "https://")):
        # qwen-vl-utils downloads with requests; the standard library does the same here.
        with urllib.request.urlopen(source, timeout=_URL_TIMEOUT_S) as response:
            return _decode(io.BytesIO(response.read()))
    if source.startswith("file://"):
        return _decode(source.removeprefix("file://"))
    if source.startswith("data:image"):
        # Only base64 payloads are read; qwen-vl-utils rejects any other data URI the same way.
        if "base64," not in source:
            raise ValueError(f"unrecognised image source (a data URI without base64): {source[:64]!r}")
        return _decode(io.BytesIO(base64.b64decode(source.split("base64,", 1)[1])))
    return _decode(source)


def _decode(file: str | io.BytesIO) -> Image.Image:
    with Image.open(file) as image:
        check_declared_size(image)
        image.load()
        return image.copy()  # a closed image's pixels are gone; the copy keeps them


def check_declared_size(image: Image.Image) -> None:
    """Refuse an opened, not yet decoded image whose header declares over MAX_SOURCE_PIXELS pixels."""
    width, height = image.size
    if width * height > MAX_SOURCE_PIXELS:
        raise ValueError(
            f"image declares {width}x{height} = {width * height} pixels, over the bound of {MAX_SOURCE_PIXELS} (a "
            "decompression bomb?)"
        )


def _as_rgb(image: Image.Image) -> Image.Image:
    """RGB as qwen-vl-utils makes it: RGBA is composited onto white, any other mode converted."""
    if image.mode != "RGBA":
        return image.convert("RGB")
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=image.getchannel("A"))
    return background
