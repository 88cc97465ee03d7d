"""One keras-tuner trial: caesweep's own training, its record, and Hyperband's stage checkpoints."""

from __future__ import annotations

import json
import math
import shutil
import socket
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

import results
from cae.config import RunConfig, from_flat
from cae.errors import CaesweepError
from search.interrupt import Interruption
from search.kt.space import sample_params
from search.kt.tables import RECORD_FILE, read_entries, trial_tables
from search.sweep import Sweep
from search.trial import SPLIT_SEED, data_for, resolve_config

CHECKPOINT_DIR = "checkpoint"  # a Hyperband stage's last state, for the trial that continues it


def _reason(exc: Exception) -> str:
    """One line: a caesweep error says it all; anything else is named by its type."""
    text = str(exc) if isinstance(exc, CaesweepError) else f"{type(exc).__name__}: {exc}"
    return (text.splitlines() or [""])[0][:300]


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts))


class _StageHook:
    """Epoch hook: keep this trial's own epochs; at the stage's last epoch save the state to continue from."""

    def __init__(self, budget: int, checkpoint_dir: Path | None, stop: Interruption) -> None:
        self.budget = budget
        self.checkpoint_dir = checkpoint_dir
        self.stop = stop
        self.records: list[dict[str, float]] = []
        self.saved = False

    def __call__(self, state: Any) -> None:
        from cae import checkpoint

        self.records.append({k: state.record.get(k) for k in results.HISTORY_COLUMNS[1:]})
        if self.checkpoint_dir is not None and (state.epoch >= self.budget or state.model.stop_training):
            checkpoint.save(self.checkpoint_dir, state.model, state.progress, state.best_weights)
            self.saved = True
        if self.stop.requested:
            raise _Stop


def _save_record(trial_dir: Path, record: dict[str, Any], hook: _StageHook) -> None:
    """The trial's record, written when it ends (an interrupted trial leaves none: resume runs it again)."""
    record.update(history=hook.records, finished_at=_iso(time.time()))
    results.write_atomic(trial_dir / RECORD_FILE, json.dumps(record), trial_dir.parents[1])  # <study>/kt/trial_x


class _Stop(BaseException):  # noqa: N818  (not an Exception: keras-tuner and Keras must not catch it)
    """A signal was received: leave the running trial at the end of this epoch (it stays RUNNING)."""


@dataclass
class TrialRunner:
    """What every trial of a keras-tuner study shares: the sweep, the space's conditions, the encoded data."""

    sweep: Sweep
    conditions: dict[str, tuple[str, list[int]]]
    stop: Interruption
    node: str = field(default_factory=socket.gethostname, init=False)
    _prepared: dict[tuple[Any, ...], Any] = field(default_factory=dict, init=False, repr=False)
    # The compiled models kept for the next trials of the same shape (cae.training.ModelPool), made at the first.
    _pool: Any = field(default=None, init=False, repr=False)

    @property
    def metric(self) -> str:
        return self.sweep.opts.objectives[0]

    def prepared(self, run: RunConfig) -> Any:
        """The data encoded for the trial's task (once per task, noise and seed)."""
        from cae.tasks import get_task
        from cae.training import prepare

        key = (run.train.task, run.train.noise, run.train.seed)
        if key not in self._prepared:
            data = data_for(self.sweep.data, {SPLIT_SEED: self.sweep.opts.split_seed})  # one split: the study's
            self._prepared[key] = prepare(get_task(run.train.task), data, run.train.noise, run.train.seed)
        return self._prepared[key]

    def run_trial(self, trial: Any, trial_dir: Path) -> dict[str, float]:
        """Train one keras-tuner trial with caesweep's training; record it; return the objective."""
        import keras_tuner

        from cae.runtime import keras

        keras.backend.clear_session()  # each trial starts from a clean graph
        values = trial.hyperparameters.values
        budget = int(values.get("tuner/epochs", self.sweep.max_epochs))
        parent = values.get("tuner/trial_id")
        started = time.time()
        record: dict[str, Any] = {"budget": budget, "parent": parent, "started_at": _iso(started)}
        checkpoint_dir = trial_dir / CHECKPOINT_DIR
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # left by an interrupted attempt at this trial
        hook = _StageHook(budget, checkpoint_dir if budget < self.sweep.max_epochs else None, self.stop)
        try:
            params = sample_params(self.sweep.space, trial.hyperparameters, self.conditions)
            run = from_flat(resolve_config(self.sweep.settings, params))
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
        from cae.epochs import at_best_epoch

        prepared = self.prepared(run)
        resume_from = str(parent_dir) if parent_dir is not None and parent_dir.is_dir() else None
        if parent_dir is not None and resume_from is None:
            print(f"note: trial {trial_id}: the checkpoint of the trial it continues is missing; training from "
                  "scratch")
        stage = replace(run, train=replace(run.train, epochs=budget))
        if self._pool is None:
            self._pool = training.ModelPool()
        # The model goes back to the pool at the end of train(), and is done with here before the next trial's.
        result = training.train(stage, prepared, hooks=[hook], resume_from=resume_from, evaluate_test=False,
                                pool=self._pool)
        model: Any = result.model  # train() always returns its model
        if hook.checkpoint_dir is not None and not hook.saved and resume_from is not None:
            # Nothing left to train: pass the parent's state on.
            shutil.copytree(resume_from, hook.checkpoint_dir, dirs_exist_ok=True)
        seconds = sum(r["seconds"] or 0.0 for r in hook.records)
        metrics: dict[str, Any] = at_best_epoch(result.history, result.best_epoch)
        metrics.update(
            params=result.params,
            epochs=result.epochs,
            best_epoch=result.best_epoch,
            train_seconds=seconds,
            images_per_second=len(prepared.train.x) * len(hook.records) / seconds if seconds > 0 else 0.0,
        )
        if budget >= self.sweep.max_epochs:  # a finished trial: score the kept (best-epoch) weights, keep the model
            metrics.update(training.evaluate(model, prepared, run.model))
            path = self.sweep.paths.model_path(trial_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            model.save(path)
        return metrics

    def write_tables(self, tuner: Any) -> pd.DataFrame:
        """Rebuild trials.csv and history.csv from keras-tuner's trials and caesweep's records."""
        entries = read_entries(tuner, self.sweep.space, self.conditions)
        trials, history = trial_tables(entries, self.sweep.settings, self.sweep.max_epochs, self.node)
        results.write_tables(self.sweep.paths, trials, history)
        return trials
