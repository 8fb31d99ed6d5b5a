"""Where a running job's roles spend their time: py-spy samples of each role's processes, summed.

    python -m benchmarks.profile_roles [--seconds 30] [--top 25] [--out DIR]

Attach to a job running on this node (`python launch.py ...` in another shell): each role's
processes (found by their Ray titles) are sampled at once for `--seconds`, without stopping them
(py-spy --nonblocking; `pip install py-spy`, which needs ptrace rights over those processes).
Prints, per role, the functions holding the most samples (inclusive: the function or anything
it called), as a share of the role's samples; the raw stacks are kept in DIR for flame graphs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks.processes import ROLE_TITLES, role_processes


def inclusive_shares(stacks_file: Path) -> tuple[Counter, int]:
    """From py-spy's raw output ("frame;frame;... count" per line): samples per function,
    counted once per stack however often it recurs, and the total samples."""
    per_function: Counter = Counter()
    total = 0
    for line in stacks_file.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        for frame in set(stack.split(";")):
            per_function[frame] += samples
    return per_function, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", default=None, help="folder for the raw stacks (default: a temporary one)")
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        raise SystemExit("profile_roles needs py-spy (pip install py-spy)")
    out = Path(args.out or tempfile.mkdtemp(prefix="profile-"))
    out.mkdir(parents=True, exist_ok=True)
    running = []
    for role, processes in role_processes().items():
        for process in processes:
            if process.cmdline()[:1] and process.cmdline()[0].startswith(ROLE_TITLES[role]):
                stacks = out / f"{role}-{process.pid}.txt"
                command = [
                    "py-spy",
                    "record",
                    "--pid",
                    str(process.pid),
                    "--duration",
                    str(args.seconds),
                    "--rate",
                    "50",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(stacks),
                ]
                running.append(
                    (role, stacks, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                )
    if not running:
        raise SystemExit("no role processes found on this node: is a job running?")
    for _, _, process in running:
        process.wait()
    for role in ROLE_TITLES:
        totals: Counter = Counter()
        samples = 0
        for _, stacks, _ in (r for r in running if r[0] == role and r[1].exists()):
            per_function, total = inclusive_shares(stacks)
            totals.update(per_function)
            samples += total
        if not samples:
            continue
        print(f"\n## {role}: {samples} samples in {args.seconds} s (stacks in {out})")
        for frame, count in totals.most_common(args.top):
            print(f"{100 * count / samples:5.1f}%  {frame[:150]}")


if __name__ == "__main__":
    main()
