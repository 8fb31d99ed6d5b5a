"""The roles' processes on this node: found by the titles Ray gives them, pinned to cores, measured.

Ray titles an actor's process `ray::<Class>` (`ray::<Class>.<method>` while it runs one), so a
role's processes are found without asking the roles. A role's process tree counts (a vLLM
engine runs in a child process of its actor).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import psutil

# Role -> the start of its processes' titles.
ROLE_TITLES = {
    "learner": "ray::LearnerRank",
    "rollout": "ray::RolloutActor",
    "serve": "ray::ServeReplica",
}


def titled_processes() -> dict[str, list[psutil.Process]]:
    """Each role's Ray worker processes now alive on this node (an actor still being built is
    titled `ray::IDLE` and not found yet)."""
    found: dict[str, list[psutil.Process]] = {role: [] for role in ROLE_TITLES}
    for process in psutil.process_iter(["cmdline"]):
        title = (process.info["cmdline"] or [""])[0]
        for role, prefix in ROLE_TITLES.items():
            if title.startswith(prefix):
                found[role].append(process)
    return found


def role_processes() -> dict[str, list[psutil.Process]]:
    """Each role's processes, their children included (a vLLM engine's own process)."""
    return {role: [q for p in ps for q in (p, *_children(p))] for role, ps in titled_processes().items()}


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.Error:
        return []


def pin(processes: list[psutil.Process], cores: tuple[int, ...]) -> None:
    """Pin every thread of `processes` to `cores`; threads they start later inherit it."""
    for process in processes:
        try:
            for thread in process.threads():
                os.sched_setaffinity(thread.id, cores)
        except (psutil.Error, ProcessLookupError):
            continue  # gone meanwhile


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU time of `process` so far (0 once it is gone)."""
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def rss_bytes(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


@dataclass
class RoleMemory:
    """Per role: the largest RSS any of its processes reached, and its largest process's RSS at marks."""

    peak: dict[str, int] = field(default_factory=dict)
    marks: dict[str, dict[str, int]] = field(default_factory=dict)  # mark -> role -> bytes


class MemorySampler:
    """Samples the roles' RSS in a background thread (every `interval_s`) to catch their peaks."""

    def __init__(self, interval_s: float = 0.5):
        self.interval_s = interval_s
        self.memory = RoleMemory()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def now(self) -> dict[str, int]:
        """Each role's largest process RSS now."""
        return {role: max((rss_bytes(p) for p in ps), default=0) for role, ps in role_processes().items()}

    def mark(self, name: str) -> None:
        self.memory.marks[name] = self.now()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            for role, rss in self.now().items():
                self.memory.peak[role] = max(self.memory.peak.get(role, 0), rss)


@dataclass(frozen=True)
class CpuMark:
    at: float
    cpu_s: dict[str, dict[int, float]]  # role -> pid -> CPU seconds so far


def cpu_mark() -> CpuMark:
    return CpuMark(
        time.monotonic(), {role: {p.pid: cpu_seconds(p) for p in ps} for role, ps in role_processes().items()}
    )


def busy_fractions(start: CpuMark, end: CpuMark, cores: dict[str, tuple[int, ...]]) -> dict[str, float]:
    """Per role: CPU time its processes used between the marks over what its cores could give
    in that time. A process that started in between counts whole; one that ended in between, not."""
    wall = end.at - start.at
    busy = {}
    for role in cores:
        before = start.cpu_s.get(role, {})
        used = sum(cpu - before.get(pid, 0.0) for pid, cpu in end.cpu_s.get(role, {}).items())
        busy[role] = used / (wall * len(cores[role]))
    return busy
