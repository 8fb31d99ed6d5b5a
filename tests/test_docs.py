"""The README and the docs pages hold together: every relative link (and `#anchor` into a page)
resolves, every `launch.py` command they name exists, every config key they name in backticks is
in the schema, and the README stays short enough to read.

Each check is a pure function over a page's text; the unit cases below feed each one a bad link,
a bad command and a bad key, so that a check that can no longer fail shows.
"""

from __future__ import annotations

import re
import typing
from dataclasses import fields, is_dataclass
from functools import cache
from pathlib import Path

import pytest

from configs.commands import COMMAND_CONFIGS
from configs.schema import TrainConfig
from driver.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 320

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
LAUNCH = re.compile(r"launch\.py[ \t]+(?:\\\n[ \t]*)?([^\s`]+)")
# Config sections: the top-level fields of the training config and of every command's own config.
SECTIONS = sorted(
    {f.name for schema in (TrainConfig, *COMMAND_CONFIGS.values()) for f in fields(schema)}, key=len, reverse=True
)
# Not keys: a name in single quotes is an error message's (`unknown config key 'rollout.num_actor'`),
# a name called is a library's (`ray.init()`).
KEY = re.compile(r"(?<![\w./*'-])(" + "|".join(SECTIONS) + r")((?:\.(?:\w+|\*))+)(?![\w(])")
FILE_SUFFIXES = {"md", "json", "jsonl", "csv", "png", "yaml", "yml", "py", "txt", "tsv", "html", "parquet"}


def without_code(text: str) -> str:
    """The page's prose: fenced blocks and inline code spans removed."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def code_of(text: str) -> list[str]:
    """The page's code: each fenced block and each inline code span."""
    blocks = [m.group(0) for m in FENCE.finditer(text)]
    return blocks + [m.group(2) for m in CODE_SPAN.finditer(FENCE.sub("", text))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor in a page, repeats numbered as GitHub numbers them."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for match in HEADING.finditer(FENCE.sub("", text)):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(text: str, where: Path) -> list[str]:
    """The relative links of a page (at `where`) whose file, or heading in a .md file, does not exist."""
    broken = []
    for target in LINK.findall(without_code(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (where.parent / path).resolve() if path else where
        if not file.exists():
            broken.append(f"{target}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            broken.append(f"{target}: no heading with the anchor #{anchor} in {file.name}")
    return broken


def unknown_commands(text: str) -> list[str]:
    """The words after `launch.py` in a page's code that are neither a command, nor an override
    (`key=value`, the train command's default), nor a flag or a shell word."""
    unknown = []
    for code in code_of(text):
        for word in LAUNCH.findall(code):
            if word in COMMANDS or "=" in word or word.startswith(("-", "#", "&", "|", ";", "\\")) or word == "COMMAND":
                continue
            unknown.append(word)
    return unknown


def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def key_exists(segments: list[str], schema: type) -> bool:
    """Whether the dotted key `segments` walks the dataclass `schema`: a dict-valued field takes
    any sub-key, `*` stands for any field."""
    if not segments:
        return True
    head, rest = segments[0], segments[1:]
    if head == "*":
        return any(key_exists(rest, t) if is_dataclass(t) else not rest for t in _hints(schema).values())
    if head not in {f.name for f in fields(schema)}:
        return False
    kind = _hints(schema)[head]
    if is_dataclass(kind):
        return key_exists(rest, kind)
    if typing.get_origin(kind) is dict or kind is dict:
        return True
    return not rest


@cache
def _is_module_path(dotted: str) -> bool:
    """`task.layouts`, `learner.metrics.read_metrics`: a module (or a name in one) of this repository."""
    parts = dotted.split(".")
    return any(
        (ROOT.joinpath(*parts[:n]).with_suffix(".py")).is_file() or ROOT.joinpath(*parts[:n], "__init__.py").is_file()
        for n in range(2, len(parts) + 1)
    )


def unknown_keys(text: str) -> list[str]:
    """The dotted config keys in a page's code (backticks and code blocks) that the schema lacks;
    a file name (`eval.md`) or a module of this repository (`task.layouts`) is not a key."""
    unknown = []
    for code in code_of(text):
        for section, rest in KEY.findall(code):
            dotted = section + rest
            segments = dotted.split(".")
            if segments[-1] in FILE_SUFFIXES or _is_module_path(dotted):
                continue
            if not any(key_exists(segments, schema) for schema in (TrainConfig, *COMMAND_CONFIGS.values())):
                unknown.append(dotted)
    return unknown


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    assert broken_links(page.read_text(), page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_launch_command_named_exists(page):
    assert unknown_commands(page.read_text()) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_config_key_named_is_in_the_schema(page):
    assert unknown_keys(page.read_text()) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_code_block_is_closed(page):
    # An unclosed fence turns the rest of the page into one code block (and hides its links
    # from the checks above, which skip code).
    fences = [line for line in page.read_text().splitlines() if line.lstrip().startswith("```")]
    assert len(fences) % 2 == 0, f"{page.name}: {len(fences)} code fences, one left open"


def test_the_readme_stays_short():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into a docs page"


def test_the_readme_links_every_docs_page():
    text = README.read_text()
    missing = [p.name for p in PAGES[1:] if f"docs/{p.name}" not in text]
    assert missing == []


def test_every_docs_page_starts_with_a_title_and_its_purpose():
    for page in PAGES[1:]:
        lines = page.read_text().split("\n")
        assert lines[0].startswith("# ") and lines[1] == "" and lines[2].strip(), page.name


# The checks themselves, fed what they must refuse.


def test_a_missing_file_or_heading_is_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## Choosing η and a correction\n\n## Placement\n\n## Placement\n")
    text = (
        "[ok](other.md) [ok](other.md#choosing-η-and-a-correction) [ok](other.md#placement-1) [ok](#a-title)"
        " [web](https://example.com/x.md) `[in code](absent.md)`\n\n# A title\n"
    )
    page.write_text(text)
    assert broken_links(text, page) == []
    bad = "[gone](absent.md) [no heading](other.md#nowhere) [own](#nowhere) ![img](absent.png)"
    assert len(broken_links(bad, page)) == 4


def test_slugs_are_githubs():
    assert (
        slug("Quick start (a fresh machine, Python 3.11, CPU is enough)")
        == "quick-start-a-fresh-machine-python-311-cpu-is-enough"
    )
    assert slug("KubeRay: `examples/kuberay/rayjob-paper-3b.yaml`") == "kuberay-exampleskuberayrayjob-paper-3byaml"
    assert slug("Choosing η and a correction") == "choosing-η-and-a-correction"


def test_an_unknown_command_is_reported():
    good = (
        "`python launch.py` `python launch.py serve` `launch.py check-data FILE` `python launch.py resume=RUN`\n"
        "```bash\npython launch.py --config my.yaml ray.address=auto\npython launch.py \\\n  bench out=x\n```\n"
    )
    assert unknown_commands(good) == []
    assert sorted(unknown_commands("`python launch.py trian`\n```bash\npython launch.py evaluate data=x\n```\n")) == [
        "evaluate",
        "trian",
    ]
    assert unknown_commands("python launch.py trian, in prose, is not checked") == []


def test_an_unknown_config_key_is_reported():
    good = (
        "`learner.max_staleness=2` `rollout.placement.node_labels.role=rollout` `eval.reasoners.qwen7b=/ckpt`"
        " `learner.placement.resources.learner_slot=1` `task.warm_start.*` `bench.steps=3` `soak.duration_s`"
        " `eval.modes` `eval.md` `python -m task.layouts` `learner.metrics.read_metrics` `*.num_cpus`"
        " `unknown config key 'rollout.num_actor'` `ray.init()`"
    )
    assert unknown_keys(good) == []
    bad = (
        "`rollout.num_actor=3` `learner.correction.kind.extra` `serve.api.nope` `bench.stepz`\n"
        "```bash\npython launch.py curve.key_dir=x\n```\n"
    )
    assert sorted(unknown_keys(bad)) == [
        "bench.stepz",
        "curve.key_dir",
        "learner.correction.kind.extra",
        "rollout.num_actor",
        "serve.api.nope",
    ]
