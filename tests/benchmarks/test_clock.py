"""The simulated clock of the engines benchmark: epochs finish in simulated-time order, whatever the driver does.

The clock is driven here by plain asyncio tasks standing in for trials and for the driver that starts the next
trial when a worker is free; the order is fixed by construction (a trial's next epoch is released only when
every live trial waits), not by how fast anything runs.
"""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from benchmarks.clock import Clock

Plan = dict[str, list[float]]  # trial -> its epochs' seconds, in the order the driver starts the trials


async def _trial(clock: Clock, name: str, epochs: list[float], log: list[tuple[str, float]]) -> None:
    start = await clock.join(name)
    ends = start
    for seconds in epochs:
        ends += seconds
        at = await clock.advance(name, ends)
        log.append((name, at))
        await asyncio.sleep(random.uniform(0, 0.005))  # the driver processes the result (any speed)
    await clock.leave(name)


async def _sweep(plan: Plan, workers: int, grace: float = 1.0, trials: int | None = None) -> list[tuple[str, float]]:
    """Start the trials in order, ``workers`` at once; a trial starts as soon as another has left."""
    clock = Clock(workers, grace=grace, trials=trials)
    log: list[tuple[str, float]] = []
    queue = list(plan)
    running: set[asyncio.Task[None]] = set()
    while queue or running:
        while queue and len(running) < workers:
            name = queue.pop(0)
            running.add(asyncio.create_task(_trial(clock, name, plan[name], log)))
        done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    return log


def test_two_workers_see_epochs_in_the_order_they_finish() -> None:
    plan = {"A": [3.0, 3.0], "B": [1.0, 1.0, 1.0, 1.0, 1.0], "C": [2.0]}
    log = asyncio.run(_sweep(plan, workers=2))
    # A and B start at 0; B ends at 5 and C takes its worker (5 + 2 = 7); A's epochs end at 3 and 6. At 3 A's
    # epoch and B's third tie: the trial that joined first goes first.
    assert log == [("B", 1.0), ("B", 2.0), ("A", 3.0), ("B", 3.0), ("B", 4.0), ("B", 5.0), ("A", 6.0), ("C", 7.0)]


@pytest.mark.parametrize("seed", [0, 1])
def test_the_order_follows_simulated_time_for_any_durations(seed: int) -> None:
    rng = random.Random(seed)
    plan = {f"t{i}": [rng.choice([0.5, 1.0, 2.5, 4.0]) for _ in range(rng.randint(1, 4))] for i in range(9)}
    log = asyncio.run(_sweep(plan, workers=3))
    times = [at for _, at in log]
    assert times == sorted(times) and len(log) == sum(len(e) for e in plan.values())
    # The same plan simulated by hand: 3 workers, each takes the next trial when free.
    free, expected = [0.0, 0.0, 0.0], []
    for name, epochs in plan.items():
        worker = min(range(3), key=lambda w: free[w])
        t = free[worker]
        for seconds in epochs:
            t += seconds
            expected.append((name, t))
        free[worker] = t
    assert sorted(log, key=lambda e: e[1]) == log
    assert sorted(log) == sorted(expected)


def test_one_worker_is_the_sum_of_the_seconds() -> None:
    log = asyncio.run(_sweep({"A": [1.5, 2.0], "B": [0.5]}, workers=1))
    assert log == [("A", 1.5), ("A", 3.5), ("B", 4.0)]


def test_a_trial_that_leaves_while_waiting_frees_its_worker() -> None:
    async def scenario() -> list[tuple[str, float]]:
        clock = Clock(2, grace=0.2)
        log: list[tuple[str, float]] = []
        await clock.join("A")
        waiting = asyncio.create_task(clock.advance("A", 10.0))
        await asyncio.sleep(0)
        await clock.leave("A")  # stopped while it waited: its epoch never finishes
        assert math.isnan(await waiting)  # NaN: the trial reports nothing more
        await _trial(clock, "B", [1.0], log)
        return log

    assert asyncio.run(scenario()) == [("B", 1.0)]


def test_a_stopped_trial_that_never_returns_holds_the_clock_until_the_driver_says_it_ended() -> None:
    """A trial the scheduler stops while it waits in ``tune.report`` (its actor kept for reuse) never asks for its
    next epoch nor leaves: the other trial's epoch waits, even past the grace period, until the driver tells the
    clock the stopped trial has ended (``leave_on_end``); then it finishes at its own simulated time."""

    async def scenario() -> tuple[bool, float]:
        clock = Clock(2, grace=0.1)
        await clock.join("A")
        await clock.join("B")  # B reported its epoch and was stopped: it never calls the clock again
        waiting = asyncio.create_task(clock.advance("A", 4.0))
        await asyncio.sleep(0.5)  # five grace periods
        held = not waiting.done()
        await clock.leave("B")  # what the driver's callback does when Tune ends B
        return held, await asyncio.wait_for(waiting, timeout=10)

    assert asyncio.run(scenario()) == (True, 4.0)


def test_a_clock_told_the_number_of_trials_does_not_wait_for_a_trial_after_the_last() -> None:
    """The end of a 3-worker study (fewer than 3 trials left): a clock that knows the study's trials lets the
    earliest waiting one go at once, in the same order the grace period gives; with an hour's grace and no count
    it would wait an hour per epoch there (the time-out below would fail the test)."""
    plan = {"A": [3.0, 3.0, 3.0], "B": [1.0] * 5, "C": [2.0, 2.0], "D": [0.5], "E": [4.0, 1.0]}
    expected = asyncio.run(_sweep(plan, workers=3))  # the grace period (1 s) releases the end
    known = asyncio.run(asyncio.wait_for(_sweep(plan, workers=3, grace=3600.0, trials=len(plan)), timeout=120))
    assert known == expected
    # A study with a trial that never starts (a repeated proposal is told, not trained): the grace period ends it.
    assert asyncio.run(_sweep(plan, workers=3, grace=0.2, trials=len(plan) + 1)) == expected
