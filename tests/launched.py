"""`python launch.py ...` as a user runs it, for tests: in a session of its own, its output read
as it comes, and every process it started (Ray's included) findable, and killable, by session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


class Launched:
    def __init__(self, args: list[str], env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()):
        """`prefix`: what runs the command (`ip netns exec NS` runs it on a test cluster's node)."""
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "launch.py", *args],
            cwd=REPO,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # Read all along, as a terminal would: a pipe nobody reads fills up, and then the run
        # blocks in its next write (seen: a run that never saw the Ctrl-C sent meanwhile).
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._lines.extend, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return "".join(self._lines)

    def finish(self, timeout: float) -> tuple[int, str]:
        """(exit code, all output) once the run has exited; raises TimeoutExpired after `timeout`."""
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code, self.output()

    def session(self) -> list[psutil.Process]:
        """Every live process of the run's session: the run and all it started."""
        found = []
        for proc in psutil.process_iter():
            try:
                if os.getsid(proc.pid) == self.pid:
                    found.append(proc)
            except (ProcessLookupError, PermissionError):
                continue
        return found

    def leftovers(self, timeout: float = 30.0) -> list[str]:
        """What of the session is still there after `timeout` seconds of waiting for it to go."""
        deadline = time.monotonic() + timeout
        while (left := self.session()) and time.monotonic() < deadline:
            time.sleep(0.5)
        return [f"{p.pid} {p.name()}" for p in left if p.is_running()]

    def kill(self) -> None:
        """Kill the whole session, so a failed test leaves nothing to slow the tests after it."""
        for proc in self.session():
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                continue
        try:  # reap the run itself: a killed child stays a zombie until its parent waits for it
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
