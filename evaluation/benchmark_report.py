"""A benchmark evaluation's results, written for people and for tools.

- `eval.md`: the command, the exact configuration, accuracy per mode and reasoner, and per category;
- `eval.csv`: the same accuracies, one row per (mode, reasoner, category), with the configuration's
  key facts in every row (so tables from several evaluations concatenate);
- `items.jsonl`: every response, what was read from it, and whether it was right;
- `eval.png`: accuracy per mode and reasoner, by category.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from configs.commands import EvalCommandConfig
from evaluation.benchmark import MODES, BenchmarkSpec, ItemResult
from vlm.boxed import boxed_parts

ALL = "all"


@dataclass(frozen=True)
class Accuracy:
    """Accuracy of one (mode, reasoner) on one category (or all): the mean over items of each
    item's share of right responses, and its standard error over items."""

    mode: str
    reasoner: str
    category: str
    items: int
    samples: int  # responses per item
    accuracy: float
    stderr: float
    boxed: float  # share of the responses that box their final answer
    score_lines: int  # responses carrying a judge's "Score:" line: judging where it should answer


_SCORE_LINE = re.compile(r"^\s*Score:", re.MULTILINE)


def accuracies(results: list[ItemResult]) -> list[Accuracy]:
    per_item: dict[tuple[str, str, str], list[ItemResult]] = defaultdict(list)
    categories: dict[str, str] = {}
    for r in results:
        per_item[(r.mode, r.reasoner, r.id)].append(r)
        categories[r.id] = r.category or "(none)"
    groups: dict[tuple[str, str, str], list[list[ItemResult]]] = defaultdict(list)
    for (mode, reasoner, item_id), responses in per_item.items():
        groups[(mode, reasoner, ALL)].append(responses)
        groups[(mode, reasoner, categories[item_id])].append(responses)
    rows = []
    for (mode, reasoner, category), items in groups.items():
        shares = [sum(r.correct for r in responses) / len(responses) for responses in items]
        stderr = statistics.stdev(shares) / math.sqrt(len(shares)) if len(shares) > 1 else float("nan")
        every = [r for responses in items for r in responses]
        boxed = sum(bool(boxed_parts(r.response)) for r in every) / len(every)
        score_lines = sum(bool(_SCORE_LINE.search(r.response)) for r in every)
        rows.append(
            Accuracy(
                mode,
                reasoner,
                category,
                len(items),
                len(items[0]),
                statistics.fmean(shares),
                stderr,
                boxed,
                score_lines,
            )
        )
    return sorted(rows, key=lambda a: (a.category != ALL, a.category, MODES.index(a.mode), a.reasoner))


def _column(a: Accuracy) -> str:
    return a.mode if not a.reasoner else f"{a.mode} ({a.reasoner})"


def format_markdown(rows: list[Accuracy], facts: dict, command: str) -> str:
    lines = [
        f"# Benchmark evaluation: {Path(facts['benchmark']).name}",
        "",
        f"    {command}",
        "",
        "## Configuration",
        "",
        "```json",
    ]
    lines += [json.dumps(facts, indent=2), "```", "", "## Accuracy", ""]
    lines += [
        "| mode | reasoner | accuracy | std. error | items x responses | boxed | judge's Score lines |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in (a for a in rows if a.category == ALL):
        lines.append(
            f"| {a.mode} | {a.reasoner or '-'} | {a.accuracy:.3f} | {a.stderr:.3f} | {a.items} x {a.samples} | "
            f"{a.boxed:.2f} | {a.score_lines} |"
        )
    columns = list(dict.fromkeys(_column(a) for a in rows))
    table = {(a.category, _column(a)): a for a in rows}
    categories = list(dict.fromkeys(a.category for a in rows if a.category != ALL))
    lines += [
        "",
        "## By category",
        "",
        "| category | items | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for category in categories:
        cells = [f"{table[(category, c)].accuracy:.3f}" if (category, c) in table else "" for c in columns]
        items = max(a.items for a in rows if a.category == category)
        lines.append(f"| {category} | {items} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def benchmark_facts(config: EvalCommandConfig, spec: BenchmarkSpec, num_items: int) -> dict:
    """What a benchmark's numbers depend on, recorded with them (the whole config is in config.yaml)."""
    data = Path(config.eval.data).resolve()
    return {
        "benchmark": str(data),
        "benchmark_sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
        "items": num_items,
        "captioner": spec.captioner,
        "reasoners": spec.reasoners,
        "modes": list(spec.modes),
        "seed": config.seed,
        "responses_per_item": config.eval.samples_per_prompt,
        "captioner_engine": config.rollout.engine,
        "caption_sampling": asdict(config.rollout.sampling),
        "captioner_max_new_tokens": config.eval.max_new_tokens or config.rollout.sampling.max_new_tokens,
        "reasoner_engine": config.serve.engine,
        "reasoner_temperature": config.serve.temperature,
        "reasoner_max_new_tokens": config.serve.max_new_tokens,
    }


def format_overall(rows: list[Accuracy]) -> str:
    """One line per mode and reasoner: accuracy over all items, for the terminal."""
    return "\n".join(
        f"{a.mode:>9} {a.reasoner or '-':>12}: {a.accuracy:.3f} +- {a.stderr:.3f} ({a.items} items x {a.samples}; "
        f"{a.boxed:.0%} boxed, {a.score_lines} with a Score line)"
        for a in rows
        if a.category == ALL
    )


def write_report(out_dir: Path, results: list[ItemResult], facts: dict, command: str) -> list[Accuracy]:
    """eval.md, eval.csv, items.jsonl and eval.png in `out_dir`; `facts` is the configuration to record."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = accuracies(results)
    (out_dir / "eval.md").write_text(format_markdown(rows, facts, command))
    with (out_dir / "eval.csv").open("w", newline="") as handle:
        fixed = {"benchmark": facts["benchmark"], "captioner": facts["captioner"], "seed": facts["seed"]}
        writer = csv.DictWriter(handle, fieldnames=[*asdict(rows[0]), "reasoner_checkpoint", *fixed])
        writer.writeheader()
        for a in rows:
            writer.writerow({**asdict(a), "reasoner_checkpoint": facts["reasoners"].get(a.reasoner, ""), **fixed})
    with (out_dir / "items.jsonl").open("w", encoding="utf-8") as handle:
        for r in results:
            handle.write(json.dumps(asdict(r)) + "\n")
    plot_accuracies(rows, out_dir / "eval.png")
    return rows


def plot_accuracies(rows: list[Accuracy], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = list(dict.fromkeys(_column(a) for a in rows))
    categories = list(dict.fromkeys(a.category for a in rows))  # "all" first
    table = {(a.category, _column(a)): a.accuracy for a in rows}
    width = 0.8 / len(columns)
    figure, axis = plt.subplots(figsize=(max(5, 1.2 * len(categories) * max(1, len(columns) / 2)), 3.5))
    for k, column in enumerate(columns):
        xs = [i + k * width for i in range(len(categories))]
        axis.bar(xs, [table.get((c, column), 0.0) for c in categories], width, label=column)
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(categories))], categories, fontsize=8, rotation=20)
    axis.set_ylabel("accuracy")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
