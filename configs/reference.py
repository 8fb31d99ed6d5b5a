"""The configuration reference, docs/configuration.md, generated from the schema: every key
with its type, default, declared bound and the comment above its field, section by section.

    python -m configs.reference          write docs/configuration.md
    python -m configs.reference --check  exit 1 if the file is not what the schema generates
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from dataclasses import MISSING, Field, fields, is_dataclass
from functools import cache
from pathlib import Path

from configs.bounds import bound_of, dotted
from configs.commands import COMMAND_CONFIGS, command_keys
from configs.schema import TrainConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
FIELD_LINE = re.compile(r"^\s+(\w+)\s*:")

HEADER = """# Configuration reference

Generated from the schema (`configs/schema.py` and the section modules beside it) by `python -m
configs.reference`; `tests/test_config_reference.py` fails when it is out of date. How to configure
a run (`--config FILE`, `key=value` overrides, the paper settings):
[README, "Configuration"](../README.md#configuration).

Every key below can be given as `key=value` on the command line or in a `--config` YAML file. A
value outside its bound is refused before anything starts, naming the key. The keys of the last
sections are read only by the command named there: any other command refuses them as unknown, and
they are not in the config.yaml a run directory saves.
"""


def field_comments(cls: type) -> dict[str, str]:
    """Each field's comment (the `#` lines right above it), over the class and its bases."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if is_dataclass(klass):
            comments.update(_own_comments(klass))
    return comments


@cache
def _own_comments(klass: type) -> dict[str, str]:
    found, lines = {}, []
    for line in inspect.getsource(klass).splitlines()[1:]:
        text = line.strip()
        if text.startswith("#"):
            lines.append(text.lstrip("#").strip())
            continue
        match = FIELD_LINE.match(line)
        if match and lines:
            found[match.group(1)] = " ".join(lines)
        lines = []
    return found


def default_of(f: Field) -> object:
    return f.default_factory() if f.default is MISSING else f.default


def shown(value: object) -> str:
    text = json.dumps(value) if isinstance(value, (str, list, dict, bool)) or value is None else repr(value)
    return f"`{text}`"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")


def section_text(cls: type, path: str, only: set[str] | None = None, command: str = "") -> list[str]:
    """The section at `path` and those below it; `only`: these fields of it alone."""
    comments = field_comments(cls)
    rows, below = [], []
    for f in fields(cls):
        if only is not None and f.name not in only:
            continue
        key, default = dotted(path, f.name), default_of(f)
        if is_dataclass(default):
            below += section_text(type(default), key, command=command)
            continue
        bound = bound_of(f)
        limits = bound.describe(listed=isinstance(default, list)) if bound else ""
        rows.append(
            f"| `{key}` | {cell(f'`{f.type}`')} | {shown(default)} | {cell(limits)} | "
            f"{cell(comments.get(f.name, ''))} |"
        )
        entry = _dict_entry_type(f)
        if entry is not None:
            below += section_text(entry, f"{key}.<id>", command=command)
    text = []
    if rows:
        title = f"`{path}`" if path else "Top level"
        if command:
            title += f" (only `launch.py {command}`)"
        doc = inspect.getdoc(cls) if path else "The run's directory, resumption and seed."
        paragraphs = [cell(" ".join(paragraph.split())) for paragraph in doc.split("\n\n")]
        text = [
            "",
            f"## {title}",
            "",
            "\n\n".join(paragraphs),
            "",
            "| key | type | default | bound | what |",
            "|---|---|---|---|---|",
            *rows,
        ]
    return text + below


def _dict_entry_type(f: Field) -> type | None:
    """The section type of a `dict[str, Section]` field (each entry a section of its own)."""
    match = re.fullmatch(r"dict\[str, (\w+)\]", str(f.type))
    entry = getattr(sys.modules[TrainConfig.__module__], match.group(1), None) if match else None
    return entry if is_dataclass(entry) else None


def render() -> str:
    lines = [HEADER.rstrip("\n"), *section_text(TrainConfig, "")]
    by_section: dict[tuple[str, str], set[str]] = {}
    for key, command in command_keys().items():
        parent, _, name = key.rpartition(".")
        by_section.setdefault((command, parent), set()).add(name)
    for (command, parent), names in by_section.items():
        cls = COMMAND_CONFIGS[command]
        for part in filter(None, parent.split(".")):
            cls = type(default_of(next(f for f in fields(cls) if f.name == part)))
        lines += section_text(cls, parent, only=names, command=command)
    return "\n".join(lines) + "\n"


def main(argv: list[str], doc: Path = DOC) -> int:
    text = render()
    if "--check" in argv:
        if not doc.is_file() or doc.read_text() != text:
            print(f"{doc} is out of date: run python -m configs.reference", file=sys.stderr)
            return 1
        return 0
    doc.write_text(text)
    print(f"wrote {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
