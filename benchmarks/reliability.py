"""`python -m benchmarks.reliability SOAK_DIR`: the soak's account as a table for BENCHMARKS.md.

`python launch.py soak out=PATH soak.record=true` runs it when the soak ends (the soak's own
process does not import the benchmarks, which compose launch.py's roles).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.report import machine, write_section

COMMAND = "python launch.py soak out=runs/soak soak.record=true"


def reliability_table(report: dict) -> str:
    injected, survived = report["faults_injected_by_kind"], report["faults_survived_by_kind"]
    rows = [f"| {kind} | {count} | {min(count, survived.get(kind, 0))} |" for kind, count in sorted(injected.items())]
    absorbed = {k: v for k, v in survived.items() if k not in injected}
    dropped = ", ".join(f"{k} {v}" for k, v in report["groups_dropped"].items() if v) or "none"
    return "\n".join(
        [
            f"{report['duration_s']:.0f} s of training ({report['steps']} learner steps) under injected faults "
            f"(`soak.*`: {', '.join(f'{k}={v}' for k, v in report['config'].items() if k.endswith('_s'))}).",
            "",
            "| fault | injected | survived |",
            "|---|---|---|",
            *rows,
            f"| **all** | **{report['faults_injected']}** | **{report['faults_survived']}** |",
            "",
            "| groups | count |",
            "|---|---|",
            f"| generated | {report['groups_generated']} |",
            f"| accepted into the replay queue | {report['groups_accepted']} |",
            f"| trained on | {report['groups_consumed']} |",
            f"| still queued at the end | {report['groups_buffered_at_end']} |",
            f"| **lost** (accepted, never used or dropped) | **{report['groups_lost']}** |",
            f"| **duplicated** (a prompt position used twice) | **{report['groups_duplicated']}** |",
            "",
            f"Dropped, with the reason: {dropped} (groups lost with a dead actor are regenerated from the same "
            "prompts). Faults the roles absorbed on their own along the way: "
            f"{', '.join(f'{k} {v}' for k, v in absorbed.items()) or 'none'}.",
        ]
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("soak_dir", type=Path)
    args = parser.parse_args(argv)
    report = json.loads((args.soak_dir / "soak.json").read_text())
    table = reliability_table(report)
    print(table)
    write_section("Reliability", COMMAND, machine(), table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
