"""docs/configuration.md is what the schema generates (configs/reference.py), and names every key."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path

from configs.commands import COMMAND_CONFIGS, command_keys
from configs.reference import DOC, main, render
from configs.schema import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def leaf_keys(section: object, path: str = "") -> list[str]:
    keys = []
    for f in fields(section):
        key, value = f"{path}.{f.name}" if path else f.name, getattr(section, f.name)
        keys += leaf_keys(value, key) if is_dataclass(value) else [key]
    return keys


def test_the_reference_is_current():
    assert DOC.read_text() == render(), "docs/configuration.md is out of date: run python -m configs.reference"


def test_the_reference_names_every_key_with_its_section():
    text = DOC.read_text()
    keys = leaf_keys(TrainConfig()) + [k for command in COMMAND_CONFIGS.values() for k in leaf_keys(command())]
    missing = sorted({k for k in keys if f"| `{k}` |" not in text})
    assert not missing, missing
    assert "## `serve.api.reasoners.<id>`" in text and "| `serve.api.reasoners.<id>.base_url` |" in text
    for command in set(command_keys().values()):
        assert f"(only `launch.py {command}`)" in text


def test_the_check_flag_fails_on_a_stale_file(tmp_path, capsys):
    done = subprocess.run([sys.executable, "-m", "configs.reference", "--check"], cwd=ROOT, capture_output=True)
    assert done.returncode == 0
    stale = tmp_path / "configuration.md"
    stale.write_text(DOC.read_text() + "\nhand-edited\n")
    assert main(["--check"], stale) == 1 and "out of date" in capsys.readouterr().err
    assert main([], stale) == 0 and main(["--check"], stale) == 0
