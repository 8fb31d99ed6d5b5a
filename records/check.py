"""Whether each record's image can be used: there, readable, and not too large.

Run over a whole data file before training (the run drops what fails, `launch.py check-data`
lists it with reasons), so that a bad row is found up front, not as a warning mid-run. Headers
are cheap to read (size and format without decoding); `decode=True` also decodes every image,
which finds truncated and corrupt files too.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from records.vqa import RowProblem, VQARecord, image_source
from vlm.image_fetch import MAX_ASPECT_RATIO

# Threads opening images at once: image decoding releases the GIL, file reads wait on the disk.
_THREADS = 8


def image_problem(record: VQARecord, root: Path, max_pixels: int, decode: bool = False) -> str | None:
    """Why `record`'s image cannot be used, or None. http(s) images are fetched when used, not here."""
    source = image_source(record, root)
    if source.startswith(("http://", "https://")):
        return None
    if source.startswith("data:"):
        try:
            opened: io.BytesIO | Path = io.BytesIO(base64.b64decode(source.split(",", 1)[1], validate=True))
        except (IndexError, binascii.Error, ValueError):
            return "unreadable image: the data URI holds no valid base64"
        shown = "(data URI)"
    else:
        opened = Path(source.removeprefix("file://"))
        shown = str(opened)
        if not opened.is_file():
            return f"missing image: {shown}"
    try:
        with Image.open(opened) as image:
            width, height = image.size
            if width * height > max_pixels:
                return (
                    f"image too large: {shown} is {width}x{height} = {width * height} pixels "
                    f"(limit task.max_image_pixels={max_pixels})"
                )
            if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
                return (
                    f"image too elongated: {shown} is {width}x{height}, a side ratio above {MAX_ASPECT_RATIO} "
                    "(Qwen2.5-VL's resizing refuses it)"
                )
            if decode:
                image.load()
    except Image.DecompressionBombError as err:
        return f"image too large: {shown}: {err}"
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        return f"unreadable image: {shown}: {err}"
    return None


def image_problems(
    records: Sequence[VQARecord],
    places: Sequence[str],
    root: Path,
    max_pixels: int,
    decode: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[RowProblem]:
    """A problem for each record whose image cannot be used, in file order; `progress(1)` per record."""

    def check(record: VQARecord) -> str | None:
        reason = image_problem(record, root, max_pixels, decode)
        if progress is not None:
            progress(1)
        return reason

    with ThreadPoolExecutor(_THREADS) as pool:
        reasons = list(pool.map(check, records))
    return [RowProblem(place, r.id, reason) for r, place, reason in zip(records, places, reasons) if reason]
