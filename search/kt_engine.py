"""The keras-tuner engine: the same space, training and study folder as the Ray engine, on one machine.

``python -m search run --engine keras-tuner --kt-tuner hyperband|bayesian|random`` samples the space through
keras-tuner's oracles instead of Optuna, runs the trials one after another in this process (no Ray), and
writes the same ``study.json``, ``trials.csv``, ``history.csv`` and ``models/`` as the Ray engine, so reports
and benchmarks compare the engines directly. keras-tuner keeps its own state in ``<study>/kt/`` (the oracle,
one ``trial_<id>/`` per trial, plus caesweep's ``record.json`` and Hyperband checkpoints there).

How it maps onto keras-tuner:

- The space is sampled define-by-run through :class:`KerasTunerTrial`, which answers the three Optuna calls
  :meth:`spaces.Space.sample` makes with ``hp.Int`` / ``hp.Float`` / ``hp.Choice``. The whole space is
  declared before the first trial (:func:`declare_space`), so the first trial is sampled like the others.
  Parameters that exist only for some depths (per-level ``filters_3`` needs depth >= 3) are declared inside
  ``hp.conditional_scope("depth", [...])``: keras-tuner then samples them only when they are active.
- Training is caesweep's own :func:`cae.training.train` (same models, metrics in the reference space, early
  stopping), overriding ``Tuner.run_trial``; it returns the objective (``--objectives``, one metric).
- Hyperband (factor 3, one iteration, ``max_epochs`` of the study) sets the number of trials itself:
  ``samples`` is :func:`hyperband_trials` of ``max_epochs``, whatever ``--samples`` says. A promoted
  configuration is a new keras-tuner trial (``tuner/trial_id`` names its parent); it continues from the
  parent's checkpoint (weights, optimizer and early-stopping state) up to the new budget, as keras-tuner's
  own Hyperband does. Only when that checkpoint is missing does it retrain from scratch.
- Random search and Bayesian optimisation run ``samples`` trials of ``max_epochs`` each.

Status of a trial (the ``status`` column):

- FAILED: training raised (a diverging loss, an impossible configuration, any exception). The reason is
  kept, keras-tuner is told with ``FailedTrialError`` (no retry) and the search goes on: the consecutive-
  failure limit is set above the number of trials, so failures never stop the study.
- PRUNED: a Hyperband stage whose budget (``tuner/epochs``) is below ``max_epochs``. Either it was not
  promoted, or it was and a later trial continued it; ``error`` says which (the equivalent of a trial that
  ASHA stopped, or that ASHA let continue under the same id). Pruned trials have no test scores and no
  saved model, like pruned Ray trials.
- COMPLETE: trained to the full budget (every random/Bayesian trial; Hyperband's last stage of a bracket),
  early stopping included. It has test scores and its best-epoch model in ``models/<trial_id>.keras``.
- RUNNING: started but not finished (an interrupted study); ``resume`` runs it again.

Costs: ``history.csv`` holds the epochs each trial trained itself, so a continued trial's curve starts
after its parent's and no epoch is counted twice; ``train_seconds`` is this trial's own training time,
while ``val_mse``, ``epochs`` and ``best_epoch`` describe the model it ends with (parent epochs included).

Seeds: ``--seed`` seeds the data split, the training (through the overrides) and the oracle (as
``seed + 1``, because keras-tuner replaces a seed of 0 by a random one).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import socket
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

import results
from cae.config import RunConfig, from_flat
from cae.errors import CaesweepError, UsageError
from search import commands
from search.gpu import configure_devices
from search.options import SweepOptions
from search.records import config_columns
from search.study import new_meta, now, update_meta
from search.trial import TrialSettings, resolve_config
from spaces import Space

RECORD_FILE = "record.json"  # what caesweep keeps per trial, next to keras-tuner's trial.json
CHECKPOINT_DIR = "checkpoint"  # a Hyperband stage's last state, for the trial that continues it
HYPERBAND_FACTOR = 3  # keep the best third at each rung (the same reduction as the Ray engine's ASHA)
_METRIC_KEYS = ("val_native_mse", "val_psnr", "val_ssim")  # taken from the last epoch, as the Ray engine does


# -- the space, through keras-tuner's HyperParameters -------------------------------------------------------


class KerasTunerTrial:
    """Optuna's three ``suggest_*`` calls (what :meth:`Space.sample` makes) on a keras-tuner ``HyperParameters``.

    ``conditions`` maps a parameter name to ``(parent, values)``: that parameter is created inside
    ``hp.conditional_scope(parent, values)`` so that keras-tuner samples it only when it is used.
    """

    def __init__(self, hp: Any, conditions: Mapping[str, tuple[str, list[Any]]] | None = None) -> None:
        self.hp = hp
        self.conditions = dict(conditions or {})

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        # A log range has no additive step in keras-tuner (its step would be a factor): any integer in range.
        with self._scope(name):
            return self.hp.Int(name, low, high, step=None if log else step, sampling="log" if log else "linear")

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        with self._scope(name):
            return self.hp.Float(name, low, high, step=step, sampling="log" if log else "linear")

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        with self._scope(name):
            value = self.hp.Choice(name, list(choices))
        # hp.Choice stores booleans as 0/1: hand back the space's own choice.
        return next((c for c in choices if c == value), value)

    def _scope(self, name: str) -> contextlib.AbstractContextManager[Any]:
        if name not in self.conditions:
            return contextlib.nullcontext()
        parent, values = self.conditions[name]
        return self.hp.conditional_scope(parent, values)


def _depths(space: Space) -> list[int]:
    depth = next((p for p in space.params if p.name == "depth"), None)
    return [] if depth is None else [int(d) for d in depth.grid_values()]


def space_conditions(space: Space) -> dict[str, tuple[str, list[int]]]:
    """Parameters the space samples only for some depths -> ("depth", those depths).

    Found by sampling once per depth and comparing the names, so nothing here knows how a space names them.
    """
    import keras_tuner

    depths = _depths(space)
    used: dict[int, set[str]] = {}
    for depth in depths:
        hp = keras_tuner.HyperParameters()
        hp.values["depth"] = depth  # registered with this value instead of its default
        used[depth] = set(space.sample(KerasTunerTrial(hp)))
    names = sorted(set().union(*used.values())) if used else []
    return {
        name: ("depth", [d for d in depths if name in used[d]])
        for name in names
        if not all(name in used[d] for d in depths)
    }


def declare_space(space: Space, conditions: Mapping[str, tuple[str, list[int]]]) -> Any:
    """The space as a keras-tuner ``HyperParameters``, every (conditional) parameter declared."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    trial = KerasTunerTrial(hp, conditions)
    depths: list[int | None] = [*_depths(space)] or [None]
    for depth in depths:
        if depth is not None:
            hp.values["depth"] = depth  # activate the parameters of this depth so they get declared
        space.sample(trial)
    return hp


def sample_params(space: Space, hp: Any, conditions: Mapping[str, tuple[str, list[int]]]) -> dict[str, Any]:
    """The raw values of one trial (feed them to :meth:`Space.resolve`), read from its ``HyperParameters``."""
    return space.sample(KerasTunerTrial(hp, conditions))


def hyperband_trials(max_epochs: int, factor: int = HYPERBAND_FACTOR) -> int:
    """Trials in one Hyperband iteration: keras-tuner's bracket sizes (``HyperbandOracle``), summed."""
    brackets, epochs = 0, float(max_epochs)
    while epochs >= 1:
        epochs /= factor
        brackets += 1
    last_round_size = math.ceil(1 + math.log(max_epochs, factor))
    return sum(
        math.ceil(last_round_size / (bracket + 1) * factor ** (bracket - rnd))
        for bracket in range(brackets)
        for rnd in range(bracket + 1)
    )


# -- statuses and table rows ----------------------------------------------------------------------------------


def stage_status(
    kt_status: str, budget: int, max_epochs: int, continued_as: str | None, error: str | None
) -> tuple[str, str | None]:
    """(status, reason) of a trial from keras-tuner's status and its epoch budget (module docstring)."""
    if kt_status in ("RUNNING", "IDLE"):
        return results.RUNNING, None
    if kt_status != "COMPLETED":
        return results.FAILED, error or f"keras-tuner marked the trial {kt_status.lower()}"
    if budget >= max_epochs:
        return results.COMPLETE, None
    if continued_as is not None:
        return results.PRUNED, f"hyperband stage of {budget}/{max_epochs} epochs; promoted as trial {continued_as}"
    return results.PRUNED, f"hyperband stopped it after {budget}/{max_epochs} epochs (not promoted)"


@dataclass(frozen=True)
class TrialEntry:
    """One keras-tuner trial as the tables need it (from the oracle and the trial's record)."""

    trial_id: str
    kt_status: str  # keras-tuner's TrialStatus
    values: Mapping[str, Any]  # keras-tuner's values, ``tuner/*`` included
    params: Mapping[str, Any]  # the space's raw values (what Space.resolve takes)
    message: str | None = None  # keras-tuner's failure message (a traceback)
    record: Mapping[str, Any] | None = None  # written by the trial when it ended


def trial_tables(
    entries: Sequence[TrialEntry], settings: TrialSettings, max_epochs: int, node: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study's trial table and history from its keras-tuner trials."""
    continued = {str(e.values["tuner/trial_id"]): e.trial_id for e in entries if e.values.get("tuner/trial_id")}
    rows: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for e in entries:
        record = dict(e.record or {})
        budget = int(record.get("budget", e.values.get("tuner/epochs", max_epochs)))
        status, reason = stage_status(
            e.kt_status, budget, max_epochs, continued.get(e.trial_id), record.get("error") or _last_line(e.message)
        )
        row = {"trial_id": e.trial_id, "number": int(e.trial_id), "status": status, "node": node}
        row.update(config_columns(settings, e.params))
        row.update(record.get("metrics", {}))
        row.update(error=reason, started_at=record.get("started_at"), finished_at=record.get("finished_at"))
        rows.append(row)
        history.extend({"trial_id": e.trial_id, **h} for h in record.get("history", []))
    return results.trials_frame(rows), results.history_frame(history)


def _last_line(message: str | None) -> str | None:
    lines = [line for line in (message or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else None


def _reason(exc: Exception) -> str:
    """One line: a caesweep error says it all; anything else is named by its type."""
    text = str(exc) if isinstance(exc, CaesweepError) else f"{type(exc).__name__}: {exc}"
    return (text.splitlines() or [""])[0][:300]


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts))


# -- one trial ----------------------------------------------------------------------------------------------------


class _StageHook:
    """Epoch hook: keep this trial's own epochs; at the stage's last epoch save the state to continue from."""

    def __init__(self, budget: int, checkpoint_dir: Path | None) -> None:
        self.budget = budget
        self.checkpoint_dir = checkpoint_dir
        self.records: list[dict[str, float]] = []
        self.saved = False

    def __call__(self, state: Any) -> None:
        from cae import checkpoint

        self.records.append({k: state.record.get(k) for k in results.HISTORY_COLUMNS[1:]})
        if self.checkpoint_dir is not None and (state.epoch >= self.budget or state.model.stop_training):
            checkpoint.save(self.checkpoint_dir, state.model, state.progress, state.best_weights)
            self.saved = True


def _save_record(trial_dir: Path, record: dict[str, Any], hook: _StageHook) -> None:
    """The trial's record, written when it ends (an interrupted trial leaves none: resume runs it again)."""
    record.update(history=hook.records, finished_at=_iso(time.time()))
    results.write_atomic(trial_dir / RECORD_FILE, json.dumps(record))


@dataclass
class _Sweep:
    """What every trial of a keras-tuner study shares."""

    opts: SweepOptions
    space: Space
    data: Any  # cae.data.Dataset
    settings: TrialSettings
    paths: results.StudyPaths
    max_epochs: int
    conditions: dict[str, tuple[str, list[int]]]
    node: str = field(default_factory=socket.gethostname, init=False)
    _prepared: dict[tuple[Any, ...], Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def metric(self) -> str:
        return self.opts.objectives[0]

    def prepared(self, run: RunConfig) -> Any:
        """The data encoded for the trial's task (once per task, noise and seed)."""
        from cae.tasks import get_task
        from cae.training import prepare

        key = (run.train.task, run.train.noise, run.train.seed)
        if key not in self._prepared:
            self._prepared[key] = prepare(get_task(run.train.task), self.data, run.train.noise, run.train.seed)
        return self._prepared[key]

    def run_trial(self, trial: Any, trial_dir: Path) -> dict[str, float]:
        """Train one keras-tuner trial with caesweep's training; record it; return the objective."""
        import keras_tuner

        from cae.runtime import keras

        keras.backend.clear_session()  # each trial starts from a clean graph
        values = trial.hyperparameters.values
        budget = int(values.get("tuner/epochs", self.max_epochs))
        parent = values.get("tuner/trial_id")
        started = time.time()
        record: dict[str, Any] = {"budget": budget, "parent": parent, "started_at": _iso(started)}
        hook = _StageHook(budget, trial_dir / CHECKPOINT_DIR if budget < self.max_epochs else None)
        try:
            params = sample_params(self.space, trial.hyperparameters, self.conditions)
            run = from_flat(resolve_config(self.settings, params))
            parent_dir = trial_dir.parent / f"trial_{parent}" / CHECKPOINT_DIR if parent else None
            record["metrics"] = self._train(trial.trial_id, run, budget, hook, parent_dir)
            value = float(record["metrics"].get(self.metric, math.nan))
            if not math.isfinite(value):
                raise CaesweepError(f"the objective {self.metric} is {value}")
        except Exception as exc:  # a failed trial is a row with its reason, never a crashed sweep
            record.update(error=_reason(exc), traceback=traceback.format_exc()[-4000:])
            _save_record(trial_dir, record, hook)
            raise keras_tuner.errors.FailedTrialError(record["error"]) from exc
        _save_record(trial_dir, record, hook)
        return {self.metric: value}

    def _train(self, trial_id: str, run: RunConfig, budget: int, hook: _StageHook, parent_dir: Path | None) -> dict:
        from cae import training

        prepared = self.prepared(run)
        resume_from = str(parent_dir) if parent_dir is not None and parent_dir.is_dir() else None
        if parent_dir is not None and resume_from is None:
            print(f"note: trial {trial_id}: the checkpoint of the trial it continues is missing; training from "
                  "scratch")
        stage = replace(run, train=replace(run.train, epochs=budget))
        result = training.train(stage, prepared, hooks=[hook], resume_from=resume_from, evaluate_test=False)
        model: Any = result.model  # train() always returns its model
        if hook.checkpoint_dir is not None and not hook.saved and resume_from is not None:
            shutil.copytree(resume_from, hook.checkpoint_dir)  # nothing left to train: pass the parent's state on
        seconds = sum(r["seconds"] or 0.0 for r in hook.records)
        last = result.history[-1] if result.history else {}
        metrics = {k: last[k] for k in _METRIC_KEYS if k in last}
        metrics.update(
            val_mse=training.best_of(result.history, "val_mse"),
            val_loss=training.best_of(result.history, "val_loss"),
            params=result.params,
            epochs=result.epochs,
            best_epoch=result.best_epoch,
            train_seconds=seconds,
            images_per_second=len(prepared.train.x) * len(hook.records) / seconds if seconds > 0 else 0.0,
        )
        if budget >= self.max_epochs:  # a finished trial: score the kept (best-epoch) weights, keep the model
            metrics.update(training.evaluate(model, prepared))
            path = self.paths.model_path(trial_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            model.save(path)
        return metrics

    def write_tables(self, tuner: Any) -> pd.DataFrame:
        """Rebuild trials.csv and history.csv from keras-tuner's trials and caesweep's records."""
        entries = []
        for trial_id, trial in sorted(tuner.oracle.trials.items(), key=lambda item: int(item[0])):
            record_path = Path(tuner.get_trial_dir(trial_id)) / RECORD_FILE
            record = json.loads(record_path.read_text()) if record_path.exists() else None
            try:
                params = sample_params(self.space, trial.hyperparameters.copy(), self.conditions)
            except Exception:  # values the space cannot read back still give a row
                params = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
            entries.append(TrialEntry(
                trial_id=str(trial_id), kt_status=str(trial.status), values=dict(trial.hyperparameters.values),
                params=params, message=trial.message, record=record,
            ))
        trials, history = trial_tables(entries, self.settings, self.max_epochs, self.node)
        results.write_tables(self.paths, trials, history)
        return trials


# -- the tuner ----------------------------------------------------------------------------------------------------


def _oracle(sweep: _Sweep, target: int) -> Any:
    import keras_tuner

    opts = sweep.opts
    common = {
        "objective": keras_tuner.Objective(sweep.metric, direction=opts.modes[0]),
        "seed": opts.seed + 1,  # keras-tuner draws a random seed for 0
        "hyperparameters": declare_space(sweep.space, sweep.conditions),
        "max_retries_per_trial": 0,  # a failure is a result; an interrupted trial is re-run by resume
        "max_consecutive_failed_trials": target + 1,  # never reached: failures never stop the study
    }
    if opts.kt_tuner == "hyperband":
        oracle = keras_tuner.oracles.HyperbandOracle(
            max_epochs=sweep.max_epochs, factor=HYPERBAND_FACTOR, hyperband_iterations=1, **common
        )
        oracle.max_trials = target  # the bracket sizes add up to this; it also gives short trial ids
        return oracle
    if opts.kt_tuner == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(max_trials=target, **common)
    return keras_tuner.oracles.RandomSearchOracle(max_trials=target, **common)


def _tuner(sweep: _Sweep, target: int) -> Any:
    """keras-tuner's search loop with caesweep's trial; reloads ``<study>/kt`` when it exists."""
    import keras_tuner

    class CaeTuner(keras_tuner.Tuner):
        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
            return sweep.run_trial(trial, Path(self.get_trial_dir(trial.trial_id)))

        def on_trial_begin(self, trial: Any) -> None:
            super().on_trial_begin(trial)
            sweep.write_tables(self)

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            sweep.write_tables(self)  # after every trial: an interrupted study keeps what finished

    kt_dir = sweep.paths.kt_dir
    return CaeTuner(_oracle(sweep, target), directory=str(kt_dir.parent), project_name=kt_dir.name)


# -- run and resume -------------------------------------------------------------------------------------------


def _sweep(opts: SweepOptions, paths: results.StudyPaths, samples: int) -> _Sweep:
    """Validate everything and load the data (before anything is written); set up TensorFlow's devices."""
    if opts.address is not None:
        raise UsageError("--address joins a Ray cluster; the keras-tuner engine runs on this machine (drop it)")
    if results.is_uri(opts.root):
        raise UsageError(f"the keras-tuner engine writes to a local folder; --root {opts.root} is a URI")
    if opts.concurrency not in (None, 1):
        raise UsageError("the keras-tuner engine runs one trial at a time; drop --concurrency or use --engine ray")
    rt = commands.setup(opts, paths)
    configure_devices(opts.gpus_per_trial, opts.cpus_per_trial, opts.gpu_memory)  # before TensorFlow starts
    return _Sweep(opts, rt.space, rt.data, rt.settings, paths, rt.max_epochs, space_conditions(rt.space))


def run_keras_tuner(opts: SweepOptions, paths: results.StudyPaths, samples: int) -> int:
    """``search run --engine keras-tuner``: a new study; returns the exit code of :func:`commands.summarise`."""
    sweep = _sweep(opts, paths, samples)
    if opts.kt_tuner == "hyperband":
        samples = hyperband_trials(sweep.max_epochs)
        if opts.samples is not None and opts.samples != samples:
            print(f"note: one Hyperband iteration with max_epochs {sweep.max_epochs} and factor {HYPERBAND_FACTOR} "
                  f"runs {samples} trials; --samples {opts.samples} does not apply to hyperband")
    paths.folder.mkdir(parents=True)
    with results.StudyLock(paths):
        meta = new_meta(opts, sweep.space, None, samples, sweep.max_epochs)
        results.write_meta(paths, meta)
        return _search(sweep, meta, samples)


def resume_keras_tuner(opts: SweepOptions, paths: results.StudyPaths, meta: dict[str, Any], target: int) -> int:
    """``search resume`` of a keras-tuner study (the caller holds the lock): finished trials are kept."""
    if opts.kt_tuner == "hyperband" and target > int(meta["samples"]):
        raise UsageError(
            f"study {meta['name']!r} is a Hyperband study of {meta['samples']} trials (one iteration for max_epochs "
            f"{meta['max_epochs']}); Hyperband cannot be extended; start a new study for more trials"
        )
    sweep = _sweep(opts, paths, target)
    meta["samples"] = target
    return _search(sweep, meta, target)


def _search(sweep: _Sweep, meta: dict[str, Any], target: int) -> int:
    tuner = _tuner(sweep, target)
    existing = len(tuner.oracle.trials)
    if target < existing:
        raise UsageError(f"study {meta['name']!r} already has {existing} trials; --samples must be at least that")
    update_meta(sweep.paths, meta, status="running")
    try:
        tuner.search()
    finally:
        trials = sweep.write_tables(tuner)
    done = int((trials["status"] == results.COMPLETE).sum())
    update_meta(sweep.paths, meta, status="done" if done else "failed", finished_at=now())
    return commands.summarise(trials, meta, sweep.paths.folder)
