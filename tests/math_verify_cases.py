"""Math-Verify's own test cases, read from its source release on the package index.

The release of the installed math-verify ships its tests; each `(gold, pred, expected)` row
of their `pytest.mark.parametrize` tables is a case of answer grading that its authors settled.
The cases are read from that file, never copied into this project: the release is downloaded
once (`pip download`, the package index being the one place these machines may reach) into
`.cache/` beside the tests.

Some rows expect what math-verify does only under a non-default setting (a float precision, a
LaTeX-only extraction, set-relation comparison); the suite is the rows that math-verify's own
default `verify(parse(gold), parse(pred))` settles as expected, which is how its default
grading is meant to behave.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "math-verify"
_COLUMNS = (["gold", "pred", "expected"], ["gold", "pred", "result"])


@dataclass(frozen=True)
class Case:
    where: str  # "test_file.py::test_name"
    gold: str
    prediction: str
    expected: bool


def release_tests() -> Path:
    """The tests folder of the installed math-verify's source release (downloaded once)."""
    release = f"math_verify-{version('math-verify')}"
    tests = CACHE / release / "tests"
    if tests.is_dir():
        return tests
    CACHE.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--no-binary",
        ":all:",
        "-d",
        str(CACHE),
        f"math-verify=={version('math-verify')}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    archive = CACHE / f"{release}.tar.gz"
    if done.returncode != 0 or not archive.is_file():
        raise RuntimeError(
            f"could not download math-verify's source release from the package index: {done.stderr[-500:]}"
        )
    with tarfile.open(archive) as opened:
        opened.extractall(
            CACHE, members=[m for m in opened.getmembers() if m.name.startswith(f"{release}/tests/")], filter="data"
        )
    return tests


def all_cases() -> list[Case]:
    """Every (gold, pred, expected) row of the release's parametrized tests."""
    cases = []
    for path in sorted(release_tests().glob("test_*.py")):
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(function, ast.FunctionDef):
                for table in _tables(function):
                    cases += [Case(f"{path.name}::{function.name}", row[0], row[1], bool(row[2])) for row in table]
    return cases


def _tables(function: ast.FunctionDef) -> list[list[tuple]]:
    tables = []
    for decorator in function.decorator_list:
        if isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", "") == "parametrize":
            columns = [name.strip() for name in ast.literal_eval(decorator.args[0]).split(",")]
            if columns[:3] in _COLUMNS and isinstance(decorator.args[1], (ast.List, ast.Tuple)):
                tables.append([row for row in map(_literal, decorator.args[1].elts) if row is not None])
    return tables


def _literal(node: ast.expr) -> tuple | None:
    """A row written as literals; None for one built by code (an f-string), which is left out."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def default_settled(cases: list[Case]) -> list[Case]:
    """The cases math-verify's default parse and verify decide as their test expects."""
    from math_verify import parse, verify

    def settles(case: Case) -> bool:
        try:
            return bool(verify(parse(case.gold), parse(case.prediction))) == case.expected
        except Exception:
            return False

    return [case for case in cases if settles(case)]
