"""Images that come inside a data file (parquet bytes, base64 in a TSV), written out as files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# File signatures of the formats Pillow reads that datasets use; anything else is kept as .img
# (Pillow reads a file by its content, not its name).
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"GIF8", ".gif"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tiff"),
    (b"MM\x00*", ".tiff"),
)


def image_suffix(data: bytes) -> str:
    """The file suffix of an encoded image, from its first bytes."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return next((suffix for signature, suffix in _SIGNATURES if data.startswith(signature)), ".img")


def write_once(path: Path, data: bytes) -> Path:
    """Write `data` to `path` unless it is there already; a crash midway leaves no partial file
    (written aside, then renamed), and processes writing the same file at once do not clash."""
    path = Path(path)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
