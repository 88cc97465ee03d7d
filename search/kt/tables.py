"""keras-tuner trials as the study's tables: the status rule and the rows (same columns as the Ray engine)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import results
from search.kt.space import sample_params
from search.records import config_columns
from search.trial import TrialSettings
from spaces import Space

RECORD_FILE = "record.json"  # what caesweep keeps per trial, next to keras-tuner's trial.json


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


def read_entries(tuner: Any, space: Space, conditions: Mapping[str, tuple[str, list[int]]]) -> list[TrialEntry]:
    """Every trial of the tuner's oracle, with caesweep's record when the trial wrote one."""
    entries = []
    for trial_id, trial in sorted(tuner.oracle.trials.items(), key=lambda item: int(item[0])):
        record_path = Path(tuner.get_trial_dir(trial_id)) / RECORD_FILE
        record = json.loads(record_path.read_text()) if record_path.exists() else None
        try:
            params = sample_params(space, trial.hyperparameters.copy(), conditions)
        except Exception:  # values the space cannot read back still give a row
            params = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        entries.append(TrialEntry(
            trial_id=str(trial_id), kt_status=str(trial.status), values=dict(trial.hyperparameters.values),
            params=params, message=trial.message, record=record,
        ))
    return entries
