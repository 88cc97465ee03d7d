"""``engines``: search strategies on the same space and compute budget, replayed against a tabular benchmark.

Each *method* searches the tabular benchmark's space (``benchmarks/spaces/tabular.yaml``) for ``--budget``
epochs of compute, once per seed. The Ray methods are real sweeps (``search.commands.run``: Ray Tune,
Optuna's sampler in RDB storage, ASHA, the study tables) whose trials replay the table instead of training
(:func:`benchmarks.tabular.replay_trainable`); each is an ordinary study under
``<root>/benchmarks/engines/<method>-s<seed>/`` that ``python -m analysis.report`` reads. keras-tuner's
Hyperband has no trial hook to replace, so it is driven directly: its own ``HyperbandOracle`` (factor 3, as
``--engine keras-tuner`` uses) over the same space declared through :mod:`search.kt.space`; a promoted trial
continues its parent, as in the keras-tuner engine, so it costs only its new epochs.

Runs are sequential (one trial at a time), so the n-th epoch replayed is the n-th epoch of compute. A
non-halving method runs ``budget / max_epochs`` trials; TPE + ASHA runs enough trials to spend the budget
(:data:`ASHA_EPOCHS_PER_TRIAL`), and Hyperband enough iterations; everything
past the budget is cut off. The result: best-so-far val MSE vs epochs spent (median and 25th-75th
percentile over seeds) and, per method, the compute needed to come within 5% of the best value in the table.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.document import Block, Bullets, Heading, Image, Table, Text
from benchmarks import analyzers, output, tabular
from benchmarks.definitions import RunPlan, derived_space
from benchmarks.sweeps import run_study, sweep_options
from cae.errors import BenchmarkError
from spaces import Space

# Epochs a TPE + ASHA trial averages, on the low side so that its trials spend the whole budget: one trial at a
# time, asynchronous ASHA promotes many early trials; measured on the shipped table: 3.3 to 5.6 per trial.
ASHA_EPOCHS_PER_TRIAL = 2.5
HYPERBAND_FACTOR = 3


@dataclass(frozen=True)
class Method:
    """One search strategy: an Optuna sampler with or without ASHA on the Ray engine, or keras-tuner Hyperband."""

    name: str
    label: str
    sampler: str | None  # Optuna sampler (Ray engine); None for keras-tuner
    scheduler: str  # "none", "asha" or "hyperband"

    def samples(self, budget: int, max_epochs: int) -> int:
        """Trials to start so that the budget is spent (extra epochs are cut off afterwards)."""
        per_trial = ASHA_EPOCHS_PER_TRIAL if self.scheduler == "asha" else max_epochs
        return max(1, math.ceil(budget / per_trial))


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("random", "random search", "random", "none"),
    Method("tpe", "Optuna TPE", "tpe", "none"),
    Method("cmaes", "Optuna CMA-ES", "cmaes", "none"),  # GP would need PyTorch (caesweep[gp]); CMA-ES does not
    Method("tpe-asha", "TPE + ASHA", "tpe", "asha"),
    Method("hyperband", "keras-tuner Hyperband", None, "hyperband"),
)}


def run(plan: RunPlan, methods: tuple[str, ...] = tuple(METHODS)) -> dict[str, Any]:
    started = time.time()
    path = plan.table or tabular.default_table_path(plan.data, plan.image_size)
    table = tabular.load_table(path, data=plan.data)
    space = table_space(plan.definition.space, table, path)
    events = []
    for seed in range(plan.seeds):
        for name in methods:
            method = METHODS[name]
            began = time.time()
            run_events = run_method(plan, method, space, table, seed)
            print(f"{method.name} seed {seed}: {len(run_events)} epochs, best val MSE "
                  f"{run_events['value'].min():.5g} ({time.time() - began:.1f} s)", flush=True)
            events.append(run_events.assign(method=method.name, seed=seed))
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


def run_method(plan: RunPlan, method: Method, space: Space, table: tabular.Table, seed: int) -> pd.DataFrame:
    """One run: its events (``trial``, ``epoch``, ``value``) in the order the epochs were spent, cut at the budget."""
    if method.scheduler == "hyperband":
        events = hyperband_events(space, table, seed, plan.budget)
    else:
        events = ray_events(plan, method, space, table, seed)
    return events.head(plan.budget).reset_index(drop=True)


def ray_events(plan: RunPlan, method: Method, space: Space, table: tabular.Table, seed: int) -> pd.DataFrame:
    """A real Ray Tune + Optuna sweep whose trials replay the table; its study's history as events."""
    opts = sweep_options(
        plan, space, f"{method.name}-s{seed}", sampler=method.sampler, scheduler=method.scheduler,
        samples=method.samples(plan.budget, table.epochs), seed=seed, concurrency=1, cpus_per_trial=1.0,
        max_failures=0,
    )
    log = plan.folder / "logs" / f"{opts.study}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as stream, contextlib.redirect_stdout(stream):  # Ray's per-trial tables go to the log
        study = run_study(opts, space, trainable=tabular.replay_trainable(table))
    order = study.trials.set_index("trial_id")["number"]
    history = study.history.assign(number=study.history["trial_id"].map(order))
    history = history.sort_values(["number", "epoch"], kind="stable")
    return pd.DataFrame({"trial": history["number"].astype(int), "epoch": history["epoch"].astype(int),
                         "value": history["val_mse"].astype(float)})


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
    with tempfile.TemporaryDirectory(prefix="caesweep-hyperband-") as folder:
        oracle._set_project_dir(folder, "kt")  # keras-tuner's own setter; the oracle saves its trials there
        while len(rows) < budget:
            trial = oracle.create_trial("replay")
            if trial.status != "RUNNING":  # STOPPED: the space is exhausted (IDLE needs a parallel trial)
                break
            values = trial.hyperparameters.values
            epochs, initial = int(values["tuner/epochs"]), int(values["tuner/initial_epoch"])
            entry = table.lookup(space.resolve(sample_params(space, trial.hyperparameters, conditions)))
            curve = entry.curve[:epochs]
            number = int(trial.trial_id)
            rows += [{"trial": number, "epoch": r["epoch"], "value": r["val_mse"]} for r in curve[initial:]]
            oracle.update_trial(trial.trial_id, {"val_mse": min(r["val_mse"] for r in curve)})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
    return pd.DataFrame(rows, columns=["trial", "epoch", "value"])


def report(plan: RunPlan, table: tabular.Table, path: Path, events: pd.DataFrame, started: float) -> dict[str, Any]:
    """Curves, summary and compute table from the events; result.json, table.md and the plot."""
    from analysis.plots import png
    from benchmarks.plots import best_so_far_figure

    curves = analyzers.best_so_far(events)
    best_known = table.best("val_mse")
    summary = analyzers.summarize(analyzers.on_budget_grid(curves, plan.budget))
    compute = analyzers.compute_table(curves, best_known, plan.budget)
    runs = curves.groupby(["method", "seed"], sort=False).agg(
        epochs=("spent", "max"), trials=("trial", "nunique"), best=("best", "min")).reset_index()
    compute = compute.merge(runs.groupby("method", sort=False)["trials"].median().rename("trials_median"),
                            on="method")
    compute.insert(1, "label", compute["method"].map(lambda m: METHODS[m].label if m in METHODS else m))
    events_file = plan.folder / "events.csv"
    events_file.parent.mkdir(parents=True, exist_ok=True)
    curves.to_csv(events_file, index=False)
    target = best_known * (1 + analyzers.TARGET_SLACK)
    # The interesting part is the approach to the target: show from the best up to the spread at 1/6 of the budget.
    top = float(summary.loc[summary["spent"] == max(1, plan.budget // 6), "q75"].max())
    figure = best_so_far_figure(summary, best_known, target, ylim=(best_known * 0.98, max(top, target) * 1.05))
    studies = sorted({f"{m}-s{s}" for m, s in zip(runs["method"], runs["seed"], strict=True) if m != "hyperband"})
    result = {
        "table": {"path": str(path), "configs": len(table.entries), "epochs": table.epochs,
                  "data": table.meta.get("data_summary"), "best_val_mse": best_known},
        "target": target,
        "methods": {m: METHODS[m].label for m in events["method"].unique()},
        "compute_to_target": output.records(compute),
        "runs": output.records(runs),
        "best_so_far": output.records(summary),
        "events_file": str(events_file),
        "studies": studies,
        "report_command": output.study_command(plan.folder, studies[:1]),
    }
    return output.write(plan, result, blocks(plan, table, path, compute, target), {"best_so_far.png": png(figure)},
                        started)


def blocks(plan: RunPlan, table: tabular.Table, path: Path, compute: pd.DataFrame, target: float) -> list[Block]:
    shown = compute.assign(
        epochs_median=compute["epochs_median"].map(lambda v: _epochs(v, plan.budget)),
        epochs_range=[f"{_epochs(a, plan.budget)}-{_epochs(b, plan.budget)}"
                      for a, b in zip(compute["epochs_min"], compute["epochs_max"], strict=True)],
    )[["label", "reached", "epochs_median", "epochs_range", "final_median", "final_q25", "final_q75", "final_gap",
       "trials_median"]]
    best = table.best("val_mse")
    return [
        Text(f"Tabular benchmark {path.name}: {len(table.entries)} configurations x {table.epochs} epochs "
             f"({table.meta.get('data_summary')}); best val MSE in the table {best:.5g}, target (within 5%) "
             f"{target:.5g}. Budget {plan.budget} epochs of compute per run, {plan.seeds} seeds per method, one "
             "trial at a time."),
        Heading("Compute to reach within 5% of the best known value"),
        Table(shown.rename(columns={"epochs_median": "epochs to target (median)", "epochs_range": "range (reached)",
                                    "final_median": "val_mse at budget (median)", "final_q25": "val_mse q25",
                                    "final_q75": "val_mse q75", "final_gap": "gap to best",
                                    "trials_median": "trials (median)"}),
              formats={"gap to best": "skill", "trials (median)": "trials"}),
        Bullets([
            "epochs to target: the median over seeds of the epochs spent when the run's best val MSE first came "
            f"within 5% of the table's best; '>{plan.budget}' when half the runs or more never did.",
            "Ray methods are real sweeps replaying the table; Hyperband drives keras-tuner's oracle directly.",
        ]),
        Image("best_so_far.png", "best-so-far val MSE vs epochs spent"),
    ]


def _epochs(value: float, budget: int) -> str:
    return f">{budget}" if not math.isfinite(value) else f"{value:.0f}"
