"""``scale``: the driver's cost per trial as a study grows to thousands of trials.

The tabular benchmark (:mod:`benchmarks.tabular`) is replayed through the real sweep (``search.commands.run``:
Ray Tune, Optuna in its SQLite storage in the study folder, the study tables, the progress view) with the
random sampler, ``--trials`` trials (default 2,000) and ``--workers`` trials at once (default 1, then 4). A
replayed trial does no training, so the time between consecutive trial starts is the driver's own cost per
trial (plus Ray's). Each trial writes the wall-clock time it started to a probe file (``starts-*.txt``,
appended; one line per trial), from which the study's seconds per trial are read by decile of the study.

Next to it, Optuna alone (no Ray, no caesweep: ``ask``, the space's define-by-run sampling, ``tell``) in the
same kind of storage, with the random sampler and with the sweep's TPE, at the same sizes: what the sampler and
the storage cost per trial by decile, so that a sampler's own growth (TPE's) is told apart from caesweep's.

The scale space (``benchmarks/spaces/scale.yaml``) has a continuous learning rate, so every proposal is new
(a study never trains a configuration twice, and the table has 36); the trainable replays the nearest of the
table's rates.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.document import Block, Bullets, Heading, Table, Text
from benchmarks import output, tabular
from benchmarks.definitions import RunPlan, derived_space
from benchmarks.sweeps import run_study, sweep_options
from spaces import Space

DEFAULT_WORKERS = (1, 4)
DECILES = 10
OPTUNA_SAMPLERS = ("random", "tpe")
CPU_PROBE_S = 0.25  # how often the driver's CPU time is sampled during a sweep


def run(plan: RunPlan) -> dict[str, Any]:
    started = time.time()
    path = plan.table or tabular.default_table_path(plan.data, plan.image_size)
    table = tabular.load_table(path, data=plan.data)
    settings = table.meta["settings"]
    space = derived_space(plan.definition.space, data=settings["data"], image_size=settings["image_size"],
                          limit=settings["limit"])
    trials = plan.budget
    rows = []
    for workers in (plan.workers,) if plan.workers else DEFAULT_WORKERS:
        starts, seconds, probe = sweep_starts(plan, space, table, trials, workers)
        label = f"caesweep sweep, {workers} worker{'s' if workers > 1 else ''}"
        rows.append(summary_row(label, np.diff(starts).tolist(), seconds, trials))
        cpu = probe.cpu_at(starts)
        rows.append(summary_row(f"{label}, driver CPU", np.diff(cpu).tolist(), probe.cpu_seconds(), trials))
        print(f"sweep, {workers} workers: {len(starts)} trials in {seconds:.1f} s", flush=True)
    for sampler in OPTUNA_SAMPLERS:
        began = time.perf_counter()
        costs = optuna_costs(plan.folder, space, table, sampler, trials)
        seconds = time.perf_counter() - began
        rows.append(summary_row(f"Optuna alone, {sampler}", costs, seconds, trials))
        print(f"Optuna alone, {sampler}: {trials} trials in {seconds:.1f} s", flush=True)
    frame = pd.DataFrame(rows)
    result = {"table": str(path), "trials": trials, "deciles": output.records(frame)}
    return output.write(plan, result, blocks(trials, frame), started=started)


# -- the sweep ----------------------------------------------------------------------------------------------------


class CpuProbe:
    """This process's CPU seconds (every thread: Tune's loop, the searcher, the tables), sampled with the wall
    clock while a sweep runs: the driver's own cost between two trial starts, whatever else the machine runs."""

    def __init__(self, interval: float = CPU_PROBE_S) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> CpuProbe:
        self.samples.append((time.time(), time.process_time()))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), time.process_time()))

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append((time.time(), time.process_time()))

    def cpu_at(self, times: Sequence[float]) -> list[float]:
        """The process's CPU seconds at each wall-clock time (interpolated between samples)."""
        wall, cpu = zip(*self.samples, strict=True)
        return np.interp(np.asarray(times, dtype=float), wall, cpu).tolist()

    def cpu_seconds(self) -> float:
        return self.samples[-1][1] - self.samples[0][1]


def sweep_starts(
    plan: RunPlan, space: Space, table: tabular.Table, trials: int, workers: int
) -> tuple[list[float], float, CpuProbe]:
    """Run one replay study of ``trials`` trials, ``workers`` at once (from scratch); every trial's start time,
    in order, the whole run's seconds and the driver's CPU time through it."""
    study = f"random-n{trials}-k{workers}"
    cpus = max(0.01, float(os.cpu_count() or 1) / workers)
    opts = sweep_options(plan, space, study, sampler="random", scheduler="none", samples=trials, seed=0,
                         concurrency=workers, cpus_per_trial=cpus, max_failures=0)
    folder = plan.folder / study
    if folder.exists():
        shutil.rmtree(folder)  # a measurement: always a new study
    probe = plan.folder / f"starts-{study}.txt"
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text("")
    log = plan.folder / "logs" / f"{study}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with log.open("w") as stream, contextlib.redirect_stdout(stream), CpuProbe() as cpu:
        run_study(opts, space, trainable=timed_replay(table, probe))
    seconds = time.perf_counter() - began
    return sorted(float(line) for line in probe.read_text().split()), seconds, cpu


def timed_replay(table: tabular.Table, probe: Path) -> Callable[[dict[str, Any], Any, Any], None]:
    """The replay trainable, first appending the trial's start time to ``probe``; a continuous learning rate
    replays the table's nearest rate."""
    replay = tabular.replay_trainable(table)
    rates = sorted({float(key[table.axes.index("lr")]) for key in table.entries})

    def trial(config: dict[str, Any], data: Any, settings: Any) -> None:
        with probe.open("a") as stream:  # one short line per append: whole lines even with several workers
            stream.write(f"{time.time():.6f}\n")
        nearest = min(rates, key=lambda rate: abs(rate - float(config["lr"])))
        replay({**config, "lr": nearest}, data, settings)

    return trial


# -- Optuna alone -------------------------------------------------------------------------------------------------


def optuna_costs(folder: Path, space: Space, table: tabular.Table, sampler: str, trials: int) -> list[float]:
    """Seconds of each trial of an Optuna-only loop (ask, sample the space, tell the replayed value) in a new
    SQLite storage under ``folder``, with the sweep's ``sampler`` (seed 0)."""
    import optuna

    from search.samplers import make_sampler
    from search.storage import open_storage

    path = folder / f"optuna-{sampler}-n{trials}.db"
    folder.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    study = optuna.create_study(storage=open_storage(f"sqlite:///{path}"), sampler=make_sampler(sampler, 0),
                                study_name="scale", direction="minimize")
    rates = sorted({float(key[table.axes.index("lr")]) for key in table.entries})
    epochs = int(space.fixed["max_epochs"])
    costs = []
    for _ in range(trials):
        began = time.perf_counter()
        trial = study.ask()
        flat = space.resolve(space.sample(trial))
        flat["lr"] = min(rates, key=lambda rate: abs(rate - float(flat["lr"])))
        curve = table.lookup(flat).curve[:epochs]
        study.tell(trial, min(r["val_mse"] for r in curve))
        costs.append(time.perf_counter() - began)
    return costs


# -- the numbers --------------------------------------------------------------------------------------------------


def decile_rates(gaps: Sequence[float], deciles: int = DECILES) -> list[float]:
    """Seconds per trial in each decile of a study: the mean of its per-trial seconds (the gaps between
    consecutive trial starts, in order), split into ``deciles`` nearly equal runs; NaN when too few."""
    if len(gaps) < deciles:
        return [float("nan")] * deciles
    return [float(chunk.mean()) for chunk in np.array_split(np.asarray(gaps, dtype=float), deciles)]


def summary_row(what: str, gaps: Sequence[float], seconds: float, trials: int) -> dict[str, Any]:
    """One line of the result: seconds per trial by decile, the whole run's seconds (and per trial) and the
    ratio last decile / first."""
    rates = decile_rates(gaps)
    row: dict[str, Any] = {"what": what, "trials": trials}
    row.update({f"d{i + 1}": rate for i, rate in enumerate(rates)})
    row["total_s"] = seconds
    row["per_trial_s"] = seconds / max(1, trials)
    row["last_first_ratio"] = rates[-1] / rates[0] if rates[0] > 0 else float("nan")
    return row


def blocks(trials: int, frame: pd.DataFrame) -> list[Block]:
    return [
        Text(f"{trials} trials per study, the tabular table replayed (3 epochs, no training), random sampler; "
             "Ray Tune, Optuna in SQLite and the study tables are the real ones."),
        Heading("Seconds per trial by decile of the study"),
        Table(frame),
        Bullets([
            "d1..d10: mean seconds between consecutive trial starts in each tenth of the study (sweeps), or "
            "Optuna's own seconds per trial (ask, sample, tell) with no Ray.",
            "driver CPU: the CPU seconds the driver process (every thread) spent between those starts: its own "
            "cost per trial, which other load on the machine does not inflate as much as wall time; total_s is "
            "then its CPU seconds for the whole run.",
            "last_first_ratio: d10 / d1; flat bookkeeping keeps it near 1.",
            "per_trial_s: the whole run's seconds divided by the trials (Ray's start included).",
        ]),
    ]
