"""The engine queue's fairness, worked by hand: which job runs next, given what waits."""

import asyncio
import threading

import pytest

from serve.engine_queue import EngineBusy, EngineQueue


async def _hold(queue: EngineQueue, release: threading.Event) -> asyncio.Future:
    """A training job that holds the engine until `release`, once the worker runs it."""
    running = threading.Event()

    def hold() -> None:
        running.set()
        release.wait()

    first = asyncio.ensure_future(queue.training(hold))
    while not running.is_set():
        await asyncio.sleep(0.001)
    return first


async def _run_order(queue: EngineQueue, jobs: list[str]) -> list[str]:
    """Hold the engine with a first training job, queue `jobs` ("L" live / "T" training) behind
    it, release it, and return the order the queued jobs ran in."""
    release, order = threading.Event(), []
    first = await _hold(queue, release)
    waiting = []
    for i, kind in enumerate(jobs):
        submit = queue.live if kind == "L" else queue.training
        waiting.append(asyncio.ensure_future(submit(lambda name=f"{kind}{i}": order.append(name))))
        await asyncio.sleep(0)  # let it enqueue, in this order
    while sum(queue.waiting()) != len(jobs):
        await asyncio.sleep(0.001)
    release.set()
    await asyncio.gather(first, *waiting)
    return order


def test_live_jobs_go_before_waiting_training_jobs():
    queue = EngineQueue(live_burst=4, max_live_waiting=8)
    order = asyncio.run(_run_order(queue, ["T", "T", "L", "L"]))
    assert order == ["L2", "L3", "T0", "T1"]


def test_a_training_job_runs_after_live_burst_live_jobs_in_a_row():
    # Burst 2: two live jobs, then the waiting training job, then the streak starts again.
    queue = EngineQueue(live_burst=2, max_live_waiting=8)
    order = asyncio.run(_run_order(queue, ["T", "L", "L", "L", "L", "L", "T"]))
    assert order == ["L1", "L2", "T0", "L3", "L4", "T6", "L5"]


def test_live_jobs_beyond_the_bound_are_refused_at_once():
    async def scenario():
        queue = EngineQueue(live_burst=1, max_live_waiting=2)
        release = threading.Event()
        first = await _hold(queue, release)
        accepted = [asyncio.ensure_future(queue.live(lambda: "ok")) for _ in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(EngineBusy, match="2 live requests are already waiting"):
            await queue.live(lambda: "refused")
        release.set()
        return await asyncio.gather(first, *accepted)

    assert asyncio.run(scenario())[1:] == ["ok", "ok"]


def test_a_failing_job_fails_its_caller_only():
    async def scenario():
        queue = EngineQueue(live_burst=1, max_live_waiting=1)
        with pytest.raises(ZeroDivisionError):
            await queue.live(lambda: 1 / 0)
        return await queue.training(lambda: "still working")

    assert asyncio.run(scenario()) == "still working"


def test_a_job_whose_caller_has_gone_is_dropped_before_it_runs():
    # A client that disconnects cancels its request (Ray Serve cancels the handler): the job
    # waiting for the engine must not run, so a queue of abandoned requests costs nothing.
    async def scenario():
        queue = EngineQueue(live_burst=1, max_live_waiting=4)
        release, ran = threading.Event(), []
        first = await _hold(queue, release)
        abandoned = asyncio.ensure_future(queue.live(lambda: ran.append("abandoned")))
        kept = asyncio.ensure_future(queue.live(lambda: ran.append("kept") or "ok"))
        await asyncio.sleep(0.01)
        abandoned.cancel()
        release.set()
        await first
        return await kept, ran

    assert asyncio.run(scenario()) == ("ok", ["kept"])
