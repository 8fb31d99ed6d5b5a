"""One engine, two kinds of work: live requests and training's scoring, shared fairly.

A replica's engine runs one job at a time on a worker thread (a model call holds the device).
Jobs wait in two queues. A live job goes before waiting training jobs, so a person's request
waits for at most the batch already running, not for the training backlog; but after
`live_burst` live jobs in a row with training waiting, one training job runs, so a flood of
live traffic slows training down without stopping it. Live jobs beyond `max_live_waiting`
are refused at once (the API answers 429) instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class EngineBusy(RuntimeError):
    """Too many live requests are waiting for this replica's engine."""


@dataclass
class _Job:
    run: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future = field(repr=False)


class EngineQueue:
    def __init__(self, live_burst: int, max_live_waiting: int):
        if live_burst < 1 or max_live_waiting < 1:
            raise ValueError("EngineQueue: live_burst and max_live_waiting must be >= 1")
        self.live_burst = live_burst
        self.max_live_waiting = max_live_waiting
        self._live: deque[_Job] = deque()
        self._training: deque[_Job] = deque()
        self._live_streak = 0
        self._ready = threading.Condition()
        threading.Thread(target=self._work, name="engine-queue", daemon=True).start()

    async def live(self, run: Callable[[], Any]) -> Any:
        with self._ready:
            if len(self._live) >= self.max_live_waiting:
                raise EngineBusy(
                    f"{len(self._live)} live requests are already waiting for this replica (serve.api.max_live_waiting)"
                )
        return await self._submit(self._live, run)

    async def training(self, run: Callable[[], Any]) -> Any:
        return await self._submit(self._training, run)

    def waiting(self) -> tuple[int, int]:
        """(live, training) jobs waiting."""
        with self._ready:
            return len(self._live), len(self._training)

    async def _submit(self, queue: deque[_Job], run: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        job = _Job(run, loop, loop.create_future())
        with self._ready:
            queue.append(job)
            self._ready.notify()
        return await job.future

    def _next(self) -> _Job:
        """The job to run now (the lock is held)."""
        live_first = self._live and (not self._training or self._live_streak < self.live_burst)
        if live_first:
            self._live_streak += 1
            return self._live.popleft()
        self._live_streak = 0
        return self._training.popleft()

    def _work(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._live or self._training)
                job = self._next()
            if job.future.cancelled():  # its caller gave up while it waited
                continue
            try:
                result, error = job.run(), None
            except BaseException as err:  # noqa: BLE001 - handed to the caller, never kills the worker
                result, error = None, err
            job.loop.call_soon_threadsafe(_settle, job.future, result, error)


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
