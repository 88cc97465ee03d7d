"""Bring the Optuna storage in line with what Ray ran, once a study's runs are over."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from search.searcher import FAIL_REASON_ATTR, RAY_TRIAL_ATTR
from search.storage import open_storage


def close_orphans(storage_url: str, study_name: str, ray_trial_ids: set[str]) -> int:
    """Mark FAIL every Optuna trial still RUNNING that no Ray trial of the study owns; returns how many.

    Such a trial was asked for by a driver that died before Ray recorded it, and no later suggestion
    adopted it (the study already had all its trials). Leaving it RUNNING would make every later reader
    believe the study is still going.
    """
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    closed = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get(RAY_TRIAL_ATTR) in ray_trial_ids:
            continue
        study._storage.set_trial_user_attr(trial._trial_id, FAIL_REASON_ATTR, "orphaned: its driver stopped first")
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        closed += 1
    return closed


def pareto_numbers(storage_url: str, study_name: str) -> list[int]:
    """Optuna trial numbers of a multi-objective study's Pareto set."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    return sorted(t.number for t in study.best_trials)
