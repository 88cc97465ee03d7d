"""Simulated time for replaying a tabular benchmark with several workers at once.

A real sweep with K workers receives results in the order its trials' epochs *finish*, and that order depends
on how long each epoch trains: asynchronous ASHA and the samplers decide on what has arrived by then. A replayed
epoch takes no time, so replayed results would arrive in whatever order the driver happens to process them.

:class:`Clock` (a Ray actor) restores the real order. Every replayed trial ``join``\\s the clock when it starts
(its start time is the clock's ``now``), then, before reporting each epoch, asks to ``advance`` to the simulated
time that epoch ends (its start plus the table's recorded seconds of its epochs so far) and blocks. The clock
lets exactly one trial go at a time: when every trial that holds a worker is waiting, the one whose epoch ends
first goes, and ``now`` becomes that time. Ray Tune's function API blocks a trial in ``tune.report`` until the
driver has processed its result, so the driver (searcher, scheduler, study tables) sees every result in
simulated-time order, exactly as a K-worker sweep would see them, however long the driver itself takes.

While a worker is free (a trial ended and the next has not started yet) the clock waits for the next trial to
``join``; when none comes within ``grace`` seconds of wall time (the study has no more trials to start) it lets
the earliest waiting trial go anyway. A clock told the study's number of trials knows when the last has
joined, and from then on lets the earliest waiting trial go as soon as every live trial waits (the end of a
K-worker study, when fewer than K trials are left, no longer waits ``grace`` per epoch). With one worker the
clock is the plain sum of the epochs' seconds.

A trial leaves when its function returns, and also when the driver sees it end (:func:`leave_on_end`, a Tune
callback): a trial the scheduler stops while it waits in ``tune.report`` keeps its thread blocked there as long as
Tune keeps its actor for reuse, which with a searcher that is not finished can be until the study ends; live in
the clock and never waiting, it would hold every other trial's next epoch back for good. A trial Hyperband pauses
at its rung leaves the same way (``leave_on_end(..., paused=True)``: its worker is free while it waits), and joins
again when it resumes from its checkpoint, starting at the clock's time then. Each run of a trial joins under its
own name (``<trial id>/<first epoch>``): the paused run's thread, ended whenever Tune reuses its actor, then
leaves only itself; the driver's ``leave`` of a trial id ends all its runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from typing import Any

GRACE_S = 3.0  # wall seconds a free worker waits for the driver to start its next trial


class Clock:
    """The simulated clock shared by the trials of one replay study (wrapped as a Ray actor by :func:`start`)."""

    def __init__(self, workers: int, grace: float = GRACE_S, trials: int | None = None) -> None:
        self.workers = workers
        self.grace = grace
        self.trials = trials  # the study's trials, when known: after the last has joined, no worker waits for one
        self.joined: set[str] = set()
        self.now = 0.0
        self.live: dict[str, int] = {}  # trial -> join order (ties go to the earlier trial)
        self.waiting: dict[str, tuple[float, asyncio.Future[float]]] = {}
        self.released = 0
        self.changed = time.monotonic()
        self._order = itertools.count()
        self._watchdog: asyncio.Task[None] | None = None

    async def join(self, trial: str) -> float:
        """Register a starting trial (or a trial's run from a checkpoint: ``<trial id>/<epoch>``); its simulated
        start time."""
        self._ensure_watchdog()
        self.live.setdefault(trial, next(self._order))
        self.joined.add(trial_of(trial))
        self._touch()
        return self.now

    async def advance(self, trial: str, until: float) -> float:
        """Block until the trial's epoch that ends at simulated time ``until`` is the next to finish; the
        clock's time then (``until``, or ``now`` if the trial was late); NaN when the trial has left meanwhile
        (the driver saw it end): the epoch must not be reported."""
        self._ensure_watchdog()
        self.live.setdefault(trial, next(self._order))
        self.joined.add(trial_of(trial))
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[trial] = (until, future)
        self._touch()
        self._release(full_only=True)
        return await future

    async def leave(self, trial: str) -> None:
        """The trial has ended (finished, stopped by the scheduler, or failed) or paused: its worker is free. Called
        by the trial itself and by the driver (:func:`leave_on_end`); the second call changes nothing. A trial id
        ends each of its runs (``<trial id>/<epoch>``); a run's own name ends that run alone."""
        for run in [t for t in self.live if t == trial or trial_of(t) == trial]:
            self.live.pop(run, None)
        for run in [t for t in self.waiting if t == trial or trial_of(t) == trial]:
            pending = self.waiting.pop(run)
            if not pending[1].done():
                pending[1].set_result(math.nan)
        self._touch()
        self._release(full_only=True)

    async def state(self) -> dict[str, Any]:
        return {"now": self.now, "live": len(self.live), "waiting": len(self.waiting), "released": self.released}

    # -- internals --------------------------------------------------------------------------------------------

    def _touch(self) -> None:
        self.changed = time.monotonic()

    def _release(self, full_only: bool) -> None:
        """Let the earliest waiting trial go when every live trial waits (and, with ``full_only``, every worker
        holds a trial)."""
        if not self.waiting or len(self.waiting) < len(self.live):
            return
        if full_only and len(self.live) < self.workers and not self.all_joined:
            return
        trial = min(self.waiting, key=lambda t: (self.waiting[t][0], self.live.get(t, 0)))
        until, future = self.waiting.pop(trial)
        self.now = max(self.now, until)
        self.released += 1
        self._touch()
        if not future.done():
            future.set_result(self.now)

    @property
    def all_joined(self) -> bool:
        """Every trial of the study has started: a free worker will get no other."""
        return self.trials is not None and len(self.joined) >= self.trials

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        """A free worker that stays free for ``grace`` seconds: no trial is coming, go on without it."""
        while True:
            await asyncio.sleep(min(0.05, self.grace / 4))
            if time.monotonic() - self.changed >= self.grace:
                self._release(full_only=False)


def trial_of(run: str) -> str:
    """The trial id of a trial's run in the clock (``<trial id>/<first epoch>``, or the trial id alone)."""
    return run.split("/", 1)[0]


def leave_on_end(name: str, paused: bool = False) -> Any:
    """A Ray Tune callback for the driver: every trial Tune ends (finished, stopped by the scheduler, failed)
    leaves the clock ``name`` (see the module's docstring); the trial's own ``leave`` then changes nothing.
    ``paused``: a trial Tune pauses (Hyperband, at its rung) leaves too, seen at the next step of Tune's loop."""
    import ray
    from ray import tune

    def leave(trial: Any) -> None:
        with contextlib.suppress(ValueError):  # no trial has started the clock (yet), or it is gone
            ray.get(ray.get_actor(actor_name(name)).leave.remote(trial.trial_id))

    class _LeaveOnEnd(tune.Callback):
        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            leave(trial)

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            leave(trial)

    class _LeaveOnPause(_LeaveOnEnd):
        def __init__(self) -> None:
            self.left: set[str] = set()  # paused trials that left, until they run again

        def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
            now = {trial.trial_id: trial for trial in trials if trial.status == "PAUSED"}
            for trial_id in now.keys() - self.left:
                leave(now[trial_id])
            self.left = set(now)

    return _LeaveOnPause() if paused else _LeaveOnEnd()


def actor_name(name: str) -> str:
    return f"caesweep-clock-{name}"


def start(name: str, workers: int, grace: float = GRACE_S, trials: int | None = None) -> Any:
    """The clock actor ``name``, created on first use by whichever trial starts first (detached, so it outlives
    that trial's worker; :func:`stop` ends it, or the end of the sweep's Ray); ``trials``: the study's number of
    trials, when every one of them will start."""
    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    actor = ray.remote(Clock)  # an asyncio actor: its calls interleave (up to 1,000 at once)
    # Outside the creating trial's placement group (Tune's trials capture their child actors), which ends with it.
    outside = PlacementGroupSchedulingStrategy(placement_group=None)  # type: ignore[arg-type]  # Ray: None = none
    return actor.options(num_cpus=0, name=actor_name(name), get_if_exists=True, lifetime="detached",
                         scheduling_strategy=outside).remote(workers, grace, trials)


def stop(name: str) -> None:
    """End the clock actor ``name`` if this process's Ray is still up and the clock exists."""
    import ray

    if not ray.is_initialized():
        return
    with contextlib.suppress(ValueError):  # never created (no trial started) or already gone
        ray.kill(ray.get_actor(actor_name(name)))
