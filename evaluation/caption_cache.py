"""The captioner's outputs on a benchmark, kept so that other reasoners read the same ones.

Keyed by (captioner, prompt, seed): the checkpoint (its folder and its files' sizes and
modification times, so a retrained checkpoint at the same path is a new captioner), the exact
conversation it was asked (system prompt, instruction, question, the image's bytes), and the
seed, sampling settings and engine. One JSONL file per captioner, seed and sampling; a line per prompt.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from records.vqa import VQARecord, image_source

_CACHE_FORMAT = 1


def captioner_identity(checkpoint: str) -> str:
    """The checkpoint folder and its files' names, sizes and modification times."""
    folder = Path(checkpoint).resolve()
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return json.dumps(
        [str(folder), [(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]]
    )


def image_digest(record: VQARecord, root: Path) -> bytes:
    """A digest of the record's image: its file's bytes (a URI's text for data: and http(s) images)."""
    source = image_source(record, root)
    image = source.encode() if source.startswith(("data:", "http://", "https://")) else Path(source).read_bytes()
    return hashlib.sha256(image).digest()


def prompt_key(kind: str, messages: list[dict], image: bytes) -> str:
    """A digest of one request to the captioner: its conversation and its image's digest."""
    text = json.dumps([kind, messages], sort_keys=True)
    return hashlib.sha256(text.encode() + image).hexdigest()


class CaptionCache:
    """Generations of one captioner under one seed and sampling, by prompt key; appended as made."""

    def __init__(self, folder: Path, captioner: str, seed: int, sampling: dict):
        key = json.dumps([_CACHE_FORMAT, captioner_identity(captioner), seed, sampling], sort_keys=True)
        self.path = Path(folder).expanduser() / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.jsonl"
        self._texts: dict[str, list[str]] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash: generated again
                self._texts[row["key"]] = row["texts"]

    def get(self, key: str) -> list[str] | None:
        return self._texts.get(key)

    def put(self, entries: dict[str, list[str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            for key, texts in entries.items():
                out.write(json.dumps({"key": key, "texts": texts}) + "\n")
        self._texts.update(entries)
