"""A wall-clock deadline for pure-Python work that works on any thread.

math-verify's own timeout is SIGALRM, which only the main thread can use, and Ray Serve runs
replica code on other threads. sympy's simplification, which math-verify drives, has no time
bound of its own. So the grader runs the comparison under this deadline: a watchdog thread raises
`DeadlineExceeded` *in the calling thread* once, through CPython's
`PyThreadState_SetAsyncExc`. That interrupts Python bytecode (all of sympy's loops) but not a
single long C call, which is why `expression_cost` refuses huge bignums before we get here.

One shot only, and the shot is fired and withdrawn under one lock, so an exception can never
surface after `call_with_deadline` returns: either it arrives while `fn` (or the disarming)
runs, inside our `try`, or it is cleared before we leave. (Code that swallows every exception
with a bare `except:` would swallow the shot; sympy has none, mpmath one around a `frexp`.)
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceeded(BaseException):
    """Raised inside the timed call. A BaseException so `except Exception` in library code
    (math-verify catches and logs every Exception) cannot swallow it."""


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    """Schedule `exc` in thread `thread_id`; `None` withdraws a scheduled, undelivered one."""
    payload = ctypes.py_object(exc) if exc is not None else None  # None is passed as NULL
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), payload)


class _Watchdog:
    """Fires one DeadlineExceeded into `thread_id` unless disarmed within `seconds`."""

    def __init__(self, thread_id: int, seconds: float) -> None:
        self._thread_id = thread_id
        self._seconds = seconds
        self._lock = threading.Lock()
        self._disarmed = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="grading-deadline", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _watch(self) -> None:
        if self._wake.wait(self._seconds):
            return
        with self._lock:
            if not self._disarmed:
                _set_async_exc(self._thread_id, DeadlineExceeded)

    def disarm(self) -> None:
        with self._lock:
            self._disarmed = True
            _set_async_exc(self._thread_id, None)  # a shot fired but not yet delivered
        self._wake.set()


def call_with_deadline(fn: Callable[[], T], seconds: float, default: T) -> T:
    """fn() in the calling thread, or `default` if it is still running after `seconds`."""
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    watchdog = _Watchdog(threading.get_ident(), seconds)
    try:
        watchdog.start()
        try:
            return fn()
        finally:
            watchdog.disarm()
    except DeadlineExceeded:
        return default
