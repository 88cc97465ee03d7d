"""``engines``: search strategies on the same space and compute budget, replayed against a tabular benchmark.

Each *method* searches the tabular benchmark's space (``benchmarks/spaces/tabular.yaml``) for ``--budget``
epochs of compute, once per seed. The Ray methods are real sweeps (``search.commands.run``: Ray Tune,
Optuna's sampler in RDB storage, ASHA or Hyperband, the study tables) whose trials replay the table instead of
training; under Ray's Hyperband a replayed trial checkpoints each epoch, and one paused at its rung frees its worker
in simulated time and resumes from its checkpoint when its rung promotes it
(:func:`benchmarks.tabular.replay_trainable`); each is an ordinary study under
``<root>/benchmarks/engines/<method>-s<seed>/`` that ``python -m analysis.report`` reads. keras-tuner's
Hyperband has no trial hook to replace, so it is driven directly: its own ``HyperbandOracle`` (factor 3, as
``--engine keras-tuner`` uses) over the same space declared through :mod:`search.kt.space`; a promoted trial
continues its parent, as in the keras-tuner engine, so it costs only its new epochs.

Each Ray method runs with ``--workers`` K trials at once (default 1, then 4): real sweeps run several trials at
once, and asynchronous ASHA and the samplers then decide on whatever has finished by then. The replayed
epochs take *simulated* time, the table's recorded training seconds: a :class:`benchmarks.clock.Clock` lets
the trials' epochs finish in the order a K-worker sweep's would, whatever the driver's own speed
(``--time-scale F`` instead sleeps F times the recorded seconds per epoch and takes the order from the wall
clock). keras-tuner's Hyperband runs one trial at a time (K = 1). Compute is counted in epochs, in the order
they finished, and in simulated seconds. A non-halving method runs ``budget / max_epochs`` trials (plus one
per extra worker); TPE + ASHA runs enough trials to spend the budget (:data:`ASHA_EPOCHS_PER_TRIAL`), Ray's
Hyperband as many as its brackets' epochs per trial ask (:func:`hyperband_epochs_per_trial`), and keras-tuner's
Hyperband enough iterations; everything past the budget is cut off. "Multi-objective ASHA" searches val_mse and
the model's size (``--objectives val_mse,params``, TPE's multi-objective mode), ASHA judging val_mse alone; its
curve is the best val_mse it found, as for the others. The result: best-so-far val MSE vs epochs
spent (median and 25th-75th percentile over seeds) and, per method and K, the compute needed to reach the value
of the table's best 5 % of configurations (:func:`target_value`), in epochs and in simulated seconds; the gaps
between methods are tested over the seeds' outcomes against the best method, with the table's own noise (the
same configurations trained with other seeds) as the practical margin (:func:`benchmarks.analyzers.against_best`).
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.document import Block, Bullets, Heading, Image, Table, Text
from benchmarks import analyzers, clock, output, tabular
from benchmarks.definitions import RunPlan, derived_space
from benchmarks.sweeps import run_study, sweep_options
from cae.errors import BenchmarkError
from search import compat
from search.sweep import Trainable
from spaces import Space

# Epochs a TPE + ASHA trial averages, on the low side so that its trials spend the whole budget (what is left
# over is cut off). On the 36-configuration table a run trains every configuration first (76-143 epochs over 36
# trials, 2.1-4.0 per trial), after which its proposals repeat one (told, never trained) and the run ends early.
ASHA_EPOCHS_PER_TRIAL = 1.5
HYPERBAND_FACTOR = 3
DEFAULT_WORKERS = (1, 4)
TPE_STARTUP_TRIALS = 4


@dataclass(frozen=True)
class Method:
    """One search strategy: an Optuna sampler with or without ASHA on the Ray engine, or keras-tuner Hyperband."""

    name: str
    label: str
    sampler: str | None  # Optuna sampler (Ray engine); None for keras-tuner
    scheduler: str  # "none", "asha" or "hyperband" (Ray's; keras-tuner's when sampler is None)
    startup_trials: int | None = None  # the sampler's random trials before its model (None: Optuna's default)
    objectives: tuple[str, ...] = ("val_mse",)  # the study's; a scheduler judges the first

    def samples(self, budget: int, max_epochs: int, workers: int = 1) -> int:
        """Trials to start so that the budget is spent (extra epochs are cut off afterwards): with K workers,
        K - 1 trials are still running when the budget is reached."""
        per_trial = {"asha": ASHA_EPOCHS_PER_TRIAL, "hyperband": hyperband_epochs_per_trial(max_epochs)}.get(
            self.scheduler, max_epochs)
        return max(1, math.ceil(budget / per_trial)) + workers - 1

    def runs_with(self, workers: int) -> bool:
        """keras-tuner's Hyperband is driven one trial at a time here."""
        return self.sampler is not None or workers == 1


def run_label(method: str, workers: int) -> str:
    """The name of one method's runs with K workers in the events and tables (``tpe-asha-k4``)."""
    return f"{method}-k{workers}"


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("random", "random search", "random", "none"),
    # TPE's model starts after 4 random trials: with Optuna's default of 10, the 10 trials of the default budget
    # would all be random, and "TPE" would be random search with the same seed (measured: identical runs).
    Method("tpe", "Optuna TPE", "tpe", "none", startup_trials=TPE_STARTUP_TRIALS),
    Method("cmaes", "Optuna CMA-ES", "cmaes", "none"),  # GP would need PyTorch (caesweep[gp]); CMA-ES does not
    Method("tpe-asha", "TPE + ASHA", "tpe", "asha", startup_trials=TPE_STARTUP_TRIALS),
    Method("hyperband", "keras-tuner Hyperband", None, "hyperband"),
    Method("tpe-hyperband", "TPE + Hyperband (Ray)", "tpe", "hyperband", startup_trials=TPE_STARTUP_TRIALS),
    Method("tpe-asha-mo", "multi-objective TPE + ASHA (val_mse, params)", "tpe", "asha",
           startup_trials=TPE_STARTUP_TRIALS, objectives=("val_mse", "params")),
)}


def hyperband_epochs_per_trial(max_epochs: int, eta: int = HYPERBAND_FACTOR) -> float:
    """The epochs a trial of one whole band of Ray's Hyperband trains on average (its brackets as Ray sizes them,
    each trial training to its rung and a third of them on to the next; the last rung at ``max_epochs``)."""
    brackets = round(math.log(max_epochs) / math.log(eta)) + 1
    trials = epochs = 0
    for s in range(brackets - 1, -1, -1):
        rung = int(max_epochs * eta ** (-s))
        if rung == 0:
            continue
        n = math.ceil(brackets / (s + 1) * eta**s)
        trials += n
        trained = 0
        for _ in range(s + 1):
            epochs += n * (rung - trained)
            trained, n, rung = rung, math.ceil(n / eta), min(rung * eta, max_epochs)
    return epochs / trials


def run(plan: RunPlan, methods: tuple[str, ...] = tuple(METHODS)) -> dict[str, Any]:
    started = time.time()
    path = plan.table or tabular.default_table_path(plan.data, plan.image_size)
    table = tabular.load_table(path, data=plan.data)
    space = table_space(plan.definition.space, table, path)
    events = []
    for workers in (plan.workers,) if plan.workers else DEFAULT_WORKERS:
        for seed in range(plan.seeds):
            for name in methods:
                method = METHODS[name]
                if not method.runs_with(workers):
                    continue
                began = time.time()
                run_events = run_method(plan, method, space, table, seed, workers)
                print(f"{method.name}, {workers} worker(s), seed {seed}: {len(run_events)} epochs, best val MSE "
                      f"{run_events['value'].min():.5g}, {run_events['seconds'].max():.0f} simulated s "
                      f"({time.time() - began:.1f} s)", flush=True)
                events.append(run_events.assign(method=run_label(method.name, workers), seed=seed,
                                                workers=workers))
    return report(plan, table, path, pd.concat(events, ignore_index=True), started)


def table_space(space: Space, table: tabular.Table, path: Path) -> Space:
    """The engines space with the table's fixed settings; refused when the table lacks part of its grid."""
    settings = table.meta["settings"]
    space = derived_space(space, data=settings["data"], image_size=settings["image_size"], limit=settings["limit"],
                          max_epochs=table.epochs)
    configs = tabular.grid_configs(space, {})
    missing = sum(table.key(c) not in table.entries for c in configs)
    if missing:
        raise BenchmarkError(
            f"table {path} lacks {missing} of the space's {len(configs)} configurations; finish it with "
            f"`python -m benchmarks build-table --data {settings['data']} --out {path}`"
        )
    return space


def run_method(
    plan: RunPlan, method: Method, space: Space, table: tabular.Table, seed: int, workers: int = 1
) -> pd.DataFrame:
    """One run: its events (``trial``, ``epoch``, ``value``, ``seconds``: the simulated time the epoch finished)
    in the order the epochs finished, cut at the budget."""
    if method.sampler is None:
        events = hyperband_events(space, table, seed, plan.budget)
    else:
        events = ray_events(plan, method, space, table, seed, workers)
    return events.head(plan.budget).reset_index(drop=True)


def ray_events(
    plan: RunPlan, method: Method, space: Space, table: tabular.Table, seed: int, workers: int = 1
) -> pd.DataFrame:
    """A real Ray Tune + Optuna sweep with ``workers`` trials at once whose trials replay the table in simulated
    time; its epochs in the order they finished."""
    study = f"{run_label(method.name, workers)}-s{seed}"
    samples = method.samples(plan.budget, table.epochs, workers)
    opts = sweep_options(
        plan, space, study, sampler=method.sampler, scheduler=method.scheduler, samples=samples, seed=seed,
        concurrency=workers,
        startup_trials=method.startup_trials, objectives=method.objectives,
        cpus_per_trial=1.0 / workers, max_failures=0,
    )
    probe = plan.folder / "events" / f"{study}.csv"
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text("")
    log = plan.folder / "logs" / f"{study}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    name = f"{study}-{uuid.uuid4().hex[:8]}"  # a new clock per run, also when Ray outlives the run
    trainable = timed_replay(table, name, workers, probe, plan.time_scale, trials=samples,
                             checkpoints=method.scheduler == "hyperband")
    try:
        with log.open("w") as stream, contextlib.redirect_stdout(stream):  # Ray's per-trial tables go to the log
            study_read = run_study(opts, space, trainable=trainable, rerun=True)
    finally:
        clock.stop(name)
    numbers = study_read.trials.dropna(subset=["number"]).set_index("trial_id")["number"].astype(int).to_dict()
    return read_probe(probe, plan.time_scale, numbers)


def timed_replay(
    table: tabular.Table, clock_name: str, workers: int, probe: Path, time_scale: float | None,
    trials: int | None = None, checkpoints: bool = False,
) -> Trainable:
    """The replay trainable (:func:`benchmarks.tabular.replay_trainable`) with time: every epoch finishes at its
    simulated time (the study's :class:`benchmarks.clock.Clock`), or after ``time_scale`` times its recorded
    seconds of sleep; each trial appends its start (epoch 0) and every epoch (trial, epoch, time, val_mse) to
    ``probe`` as it finishes, so the file lists the epochs in the order the driver received them. ``trials``:
    the study's number of trials, so that the clock knows when the last has started (:mod:`benchmarks.clock`).
    ``checkpoints``: each epoch is reported with a checkpoint (its number), and a trial restored from one (paused
    by Hyperband, then resumed) replays from the next epoch, joining the clock again at its time then."""
    train_images = int(table.meta.get("train_images", 0))

    def trial(config: dict[str, Any], data: Any, settings: Any) -> None:
        import ray
        from ray import tune

        name = tune.get_context().get_trial_id()
        replay = tabular.replay_entry(table, config, settings)
        if replay is None:
            return
        shared = clock.start(clock_name, workers, trials=trials) if time_scale is None else None
        done = _checkpoint_epoch(tune.get_checkpoint())
        run = f"{name}/{done}" if done else name  # this run of the trial in the clock (benchmarks.clock)

        def note(epoch: int, at: float, value: float) -> None:
            with probe.open("a") as stream:  # one short line per append: whole lines with several workers
                stream.write(f"{name},{epoch},{at!r},{value!r}\n")

        now = ray.get(shared.join.remote(run)) if shared is not None else time.time()
        if not done:
            note(0, now, math.nan)
        ends = now
        try:
            for report in tabular.replay_reports(replay, table.epochs, train_images)[done:]:
                ends += report["seconds"]
                if shared is not None:
                    at = ray.get(shared.advance.remote(run, ends))
                    if math.isnan(at):  # the driver saw this trial end (stopped) or pause: nothing more here
                        return
                else:
                    time.sleep(max(0.0, (time_scale or 0.0) * report["seconds"]))
                    at = time.time()
                note(int(report["epoch"]), at, float(report["val_mse"]))
                if not checkpoints:
                    tune.report(report)
                    continue
                with tempfile.TemporaryDirectory() as folder:
                    (Path(folder) / "epoch.json").write_text(json.dumps({"epoch": int(report["epoch"])}))
                    tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))
        finally:
            if shared is not None:
                ray.get(shared.leave.remote(run))

    # The simulated clock must hear in the driver when Tune ends (or pauses) a trial (benchmarks.clock.leave_on_end).
    callbacks = (clock.leave_on_end(clock_name, paused=checkpoints),) if time_scale is None else ()
    return Trainable(trial, driver_callbacks=callbacks)


def _checkpoint_epoch(checkpoint: Any) -> int:
    """The last epoch a replayed trial's checkpoint holds (0: none)."""
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        return int(json.loads((Path(folder) / "epoch.json").read_text())["epoch"])


def read_probe(probe: Path, time_scale: float | None, numbers: dict[str, int] | None = None) -> pd.DataFrame:
    """A run's events from its probe file: trials numbered by ``numbers`` (trial id -> the sampler's trial number)
    or else in the order they started, ``seconds`` the simulated time each epoch finished (scaled wall time from
    the first trial's start with ``time_scale``)."""
    rows = pd.read_csv(probe, names=["trial_id", "epoch", "time", "value"], float_precision="round_trip",
                       dtype={"trial_id": str})
    starts = rows[rows["epoch"] == 0]
    number = numbers or {trial: n for n, trial in enumerate(starts["trial_id"])}
    epochs = rows[rows["epoch"] > 0]
    seconds = epochs["time"] if time_scale is None else (epochs["time"] - starts["time"].min()) / time_scale
    return pd.DataFrame({"trial": epochs["trial_id"].map(number).astype(int).to_numpy(),
                         "epoch": epochs["epoch"].astype(int).to_numpy(), "value": epochs["value"].to_numpy(),
                         "seconds": seconds.to_numpy()})


def hyperband_events(space: Space, table: tabular.Table, seed: int, budget: int) -> pd.DataFrame:
    """keras-tuner's Hyperband oracle over the space, each trial replayed from the table, until the budget."""
    import keras_tuner

    from search.kt.space import declare_space, sample_params, space_conditions

    conditions = space_conditions(space)
    oracle = keras_tuner.oracles.HyperbandOracle(
        objective=keras_tuner.Objective("val_mse", direction="min"),
        max_epochs=table.epochs,
        factor=HYPERBAND_FACTOR,
        hyperband_iterations=budget // table.epochs + 1,  # more than the budget can use; the budget stops it
        seed=seed + 1,  # keras-tuner draws a random seed for 0
        hyperparameters=declare_space(space, conditions),
    )
    oracle.verbose = 0
    rows: list[dict[str, Any]] = []
    clock = 0.0  # one trial at a time: simulated time is the sum of the replayed epochs' seconds
    with tempfile.TemporaryDirectory(prefix="caesweep-hyperband-") as folder:
        compat.set_oracle_folder(oracle, folder, "kt")  # the oracle saves its trials there
        while len(rows) < budget:
            trial = oracle.create_trial("replay")
            if trial.status != "RUNNING":  # STOPPED: the space is exhausted (IDLE needs a parallel trial)
                break
            values = trial.hyperparameters.values
            epochs, initial = int(values["tuner/epochs"]), int(values["tuner/initial_epoch"])
            entry = table.lookup(space.resolve(sample_params(space, trial.hyperparameters, conditions)))
            curve = entry.curve[:epochs]
            number = int(trial.trial_id)
            for r in curve[initial:]:
                clock += r["seconds"]
                rows.append({"trial": number, "epoch": r["epoch"], "value": r["val_mse"], "seconds": clock})
            oracle.update_trial(trial.trial_id, {"val_mse": min(r["val_mse"] for r in curve)})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
    return pd.DataFrame(rows, columns=["trial", "epoch", "value", "seconds"])


def report(plan: RunPlan, table: tabular.Table, path: Path, events: pd.DataFrame, started: float) -> dict[str, Any]:
    """Curves, summary and compute table from the events; result.json, table.md and the plot."""
    from analysis.plots import png
    from benchmarks.plots import best_so_far_figure

    curves = analyzers.best_so_far(events)
    best_known = table.best("val_mse")
    # Read again: the build may have added repeats while the runs ran (replays read only the main grid).
    reread = tabular.load_table(path)
    target, rank = target_value(reread)
    grid = analyzers.on_budget_grid(curves, plan.budget)
    summary = analyzers.summarize(grid)
    compute = analyzers.compute_table(curves, best_known, plan.budget, target=target)
    runs = curves.groupby(["method", "seed"], sort=False).agg(
        epochs=("spent", "max"), trials=("trial", "nunique"), best=("best", "min"), seconds=("seconds", "max"),
        workers=("workers", "first")).reset_index()
    compute = compute.merge(runs.groupby("method", sort=False)["trials"].median().rename("trials_median"),
                            on="method")
    workers = runs.groupby("method", sort=False)["workers"].first()
    compute.insert(1, "label", compute["method"].map(lambda m: _label(m, int(workers[m]))))
    compute.insert(2, "workers", compute["method"].map(workers).astype(int))
    repeats = tabular.summarize(reread).get("noise")
    noise = float(repeats["val_mse_rel_sd_median"]) if repeats else 0.0
    finals = grid[grid["spent"] == plan.budget]
    compute = compute.merge(analyzers.against_best(finals, noise)[["method", "p_vs_best", "vs_best"]], on="method")
    events_file = plan.folder / "events.csv"
    events_file.parent.mkdir(parents=True, exist_ok=True)
    curves.to_csv(events_file, index=False)
    # The interesting part is the approach to the target: show from the best up to the spread at 1/6 of the budget.
    top = float(summary.loc[summary["spent"] == max(1, plan.budget // 6), "q75"].max())
    figures = {}
    for k in sorted(set(workers)):
        mine = summary[summary["method"].map(workers) == k]
        mine = mine.assign(method=[_label(m, k) for m in mine["method"]])
        figures[f"best_so_far_k{k}.png"] = png(best_so_far_figure(
            mine, best_known, target, ylim=(best_known * 0.99, max(top, target) * 1.02),
            target_label=f"target: the {_ordinal(rank)} best configuration",
            title=f"Best-so-far val MSE, {k} worker{'s' if k > 1 else ''}: median over seeds, band = 25th-75th "
            "percentile"))
    studies = sorted({f"{m}-s{s}" for m, s in zip(runs["method"], runs["seed"], strict=True)
                      if not m.startswith("hyperband")})
    result = {
        "table": {"path": str(path), "configs": len(table.entries), "epochs": table.epochs,
                  "data": table.meta.get("data_summary"), "best_val_mse": best_known,
                  "noise": repeats, "build_seconds": table.meta.get("build_seconds")},
        "target": target,
        "target_rank": rank,
        "clock": "simulated" if plan.time_scale is None else f"wall time x {plan.time_scale}",
        "methods": {m: _label(m, int(workers[m])) for m in events["method"].unique()},
        "compute_to_target": output.records(compute),
        "runs": output.records(runs),
        "best_so_far": output.records(summary),
        "events_file": str(events_file),
        "studies": studies,
        "report_command": output.study_command(plan.folder, studies[:1]),
    }
    return output.write(plan, result, blocks(plan, table, path, compute, target, rank, repeats, started, figures),
                        figures, started)


TARGET_SHARE = 0.05  # the target: the value of the best 5% of the table's configurations


def target_value(table: tabular.Table) -> tuple[float, int]:
    """The target of "compute to target": the k-th best configuration's best val MSE averaged over training seeds,
    k the best 5% (at least 1); and k. Finding one of the best few configurations, whatever the spread of the
    table's values (a fixed "within 5% of the best" is met by most of a grid whose values lie within a few
    percent).

    A configuration the table trained again with other seeds (its repeats: the best by the main seed) counts at
    the mean over those other seeds, since the main seed chose it and is low by luck as well as merit; any
    other configuration at its one seed's value. A target set from one seed's lucky value would ask the
    methods to find that luck.
    """
    values = []
    for key, entry in table.entries.items():
        others = table.repeats.get(key, (entry,))[1:]
        seeds = others if others else (entry,)
        values.append(float(sum(min(r["val_mse"] for r in e.curve) for e in seeds) / len(seeds)))
    values.sort()
    rank = max(1, round(len(values) * TARGET_SHARE))
    return values[rank - 1], rank


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def _label(run: str, workers: int) -> str:
    name = run.rsplit("-k", 1)[0]
    return f"{METHODS[name].label}, {workers} worker{'s' if workers > 1 else ''}" if name in METHODS else run


def blocks(
    plan: RunPlan, table: tabular.Table, path: Path, compute: pd.DataFrame, target: float, rank: int,
    repeats: dict[str, Any] | None, started: float, figures: dict[str, bytes],
) -> list[Block]:
    shown = compute.assign(
        epochs_median=compute["epochs_median"].map(lambda v: _epochs(v, plan.budget)),
        epochs_range=[f"{_epochs(a, plan.budget)}-{_epochs(b, plan.budget)}"
                      for a, b in zip(compute["epochs_min"], compute["epochs_max"], strict=True)],
        seconds_median=compute["seconds_median"].map(_seconds),
        seconds_range=[f"{_seconds(a)}-{_seconds(b)}"
                       for a, b in zip(compute["seconds_min"], compute["seconds_max"], strict=True)],
    )
    columns = ["label", "reached", "epochs_median", "epochs_range", "seconds_median", "seconds_range",
               "final_median", "final_q25", "final_q75", "final_gap", "trials_median", "p_vs_best", "vs_best"]
    best = table.best("val_mse")
    clock = ("simulated time: each replayed epoch takes its recorded training seconds, and the trials' epochs "
             "finish in that order" if plan.time_scale is None else
             f"each replayed epoch slept {plan.time_scale} x its recorded seconds; seconds are wall time / "
             f"{plan.time_scale}")
    notes = [
        "epochs to target: the median over seeds of the epochs spent (every worker's, in the order they finished) "
        f"when the run's best val MSE first reached the target (the {_ordinal(rank)} best configuration's value "
        f"averaged over training seeds, i.e. one of the best {rank} of {len(table.entries)}; a configuration the "
        "table repeated counts at the mean of its other seeds, since the main seed chose it); "
        f"'>{plan.budget}' when half the runs or more never did. seconds to target: the simulated wall-clock "
        "time then (with K workers, K epochs run at once).",
        f"Clock: {clock}. Ray methods are real sweeps (Ray Tune, Optuna, ASHA or Hyperband, the study tables) "
        "replaying the table with K trials at once (Ray's Hyperband pauses a trial at its rung, freeing its worker, "
        "and resumes it from its checkpoint); keras-tuner Hyperband drives keras-tuner's oracle directly, one trial "
        "at a time. Multi-objective TPE + ASHA searches val_mse and the model's size, ASHA judging val_mse.",
        f"Samplers: TPE (alone and with ASHA) lets its model choose after {TPE_STARTUP_TRIALS} random trials "
        "(`--startup-trials`; Optuna's default of 10 would make the default budget's 10 trials random search), "
        "CMA-ES after Optuna's default of 1.",
    ]
    margin = (f"the table's own noise: its {repeats['configs']} repeated configurations (the best of the grid, "
              f"{repeats['seeds']} training seeds each) vary by {repeats['val_mse_rel_sd_median']:.1%} (median "
              "relative standard deviation of their best val MSE over the seeds)" if repeats is not None else
              "none: the table has no repeated configurations to measure its noise, so any gap counts")
    notes.append(
        "vs best: each method's val MSE at the budget, one value per seed, against the method with the lowest "
        "median; worse = larger than the best method's values by more than the practical margin, "
        f"{margin}: a one-sided Mann-Whitney U test over the seeds, p vs best Holm-adjusted over the "
        f"{len(compute) - 1} other methods. \"no difference detected\" does not show two methods equal: "
        + (f"with {plan.seeds} seeds a side only a clear separation is detected." if plan.seeds > 1 else
           "with one seed per method nothing is tested.")
        + " gap to best: the median's distance to the best value in the table (one seed's)."
    )
    text = (f"Tabular benchmark {path.name}: {len(table.entries)} configurations x {table.epochs} epochs "
            f"({table.meta.get('data_summary')}); best val MSE in the table {best:.5g}, target {target:.5g} "
            f"(the {_ordinal(rank)} best configuration averaged over training seeds, {target / best - 1:.1%} above "
            "the best single value). Every MSE is on pixel values in [-1, 1], 4x the same error on [0, 1]. Budget "
            f"{plan.budget} epochs of compute per run, {plan.seeds} seeds per method and "
            f"number of workers. The whole benchmark took {(time.time() - started) / 60:.1f} min of wall time.")
    return [
        Text(text),
        Heading("Compute to reach one of the best configurations"),
        Table(shown[columns].rename(columns={
            "epochs_median": "epochs to target (median)", "epochs_range": "range (reached)",
            "seconds_median": "seconds to target (median)", "seconds_range": "seconds range",
            "final_median": "val_mse at budget (median)", "final_q25": "val_mse q25", "final_q75": "val_mse q75",
            "final_gap": "gap to best", "trials_median": "trials (median)"}),
              formats={"gap to best": "skill", "trials (median)": "trials"}),
        Bullets(notes),
        *[Image(name, "best-so-far val MSE vs epochs spent") for name in figures],
    ]


def _epochs(value: float, budget: int) -> str:
    return f">{budget}" if not math.isfinite(value) else f"{value:.0f}"


def _seconds(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.0f}"
