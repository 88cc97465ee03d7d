"""Bring the Optuna storage in line with what Ray ran, once a study's runs are over."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from results import reports
from search import compat
from search.searcher import ABANDONED_ATTR, FAIL_REASON_ATTR, INFEASIBLE_ATTR, RAY_TRIAL_ATTR
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
        compat.open_trial(study, trial).set_user_attr(FAIL_REASON_ATTR, "orphaned: its driver stopped first")
        study.tell(trial.number, state=TrialState.FAIL)
        closed += 1
    return closed


def release_unrecorded(storage_url: str, study_name: str, ray_trial_ids: set[str]) -> dict[str, int | None]:
    """Free the Optuna trials of Ray trials that the run's saved state does not list, so the next suggestion
    adopts them; returns the Ray trials to set aside, each with its Optuna trial number (None: it has none).

    Such a Ray trial was started by a driver killed before Ray next saved its state: ``Tuner.restore`` cannot
    continue it, and its Optuna trial, still RUNNING, is trained again under a new Ray trial (same number, same
    parameters). A finished Optuna trial is left as it is (its Ray trial ended; its row stays).
    """
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    found: dict[str, int | None] = dict.fromkeys(ray_trial_ids)
    for trial in study.get_trials(deepcopy=False):
        rid = trial.user_attrs.get(RAY_TRIAL_ATTR)
        if rid not in ray_trial_ids:
            continue
        if trial.state.is_finished():
            found.pop(rid)
            continue
        running = compat.open_trial(study, trial)
        running.set_user_attr(ABANDONED_ATTR, rid)
        running.set_user_attr(RAY_TRIAL_ATTR, None)
        found[rid] = trial.number
    return found


def pareto_numbers(storage_url: str, study_name: str) -> list[int]:
    """Optuna trial numbers of a multi-objective study's Pareto set."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    return sorted(t.number for t in study.best_trials)


def tell_finished(storage_url: str, study_name: str, run: Path, objectives: list[str] | tuple[str, ...]) -> int:
    """Tell Optuna the end of each trial of run folder ``run`` whose own reports ended (final or failed) while its
    Optuna trial is still RUNNING (its driver stopped in between); how many were told. Read from the trials'
    ``result.json`` lines: plain JSON, nothing unpickled."""
    from search.records import read_result_lines

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    running = {t.user_attrs.get(RAY_TRIAL_ATTR): t for t in study.get_trials(deepcopy=False,
                                                                             states=(TrialState.RUNNING,))}
    told = 0
    for folder in sorted(run.glob("trial_*")):
        frozen = running.get(folder.name.removeprefix("trial_"))
        lines = read_result_lines(folder / "result.json") if frozen is not None else []
        last = reports.read(lines[-1]) if lines else None
        if frozen is None or not isinstance(last, reports.FinalReport | reports.FailedReport):
            continue
        values = [last.objective(m) for m in objectives] if isinstance(last, reports.FinalReport) else [None]
        if any(v is None for v in values):
            study.tell(frozen.number, state=TrialState.FAIL)
        else:
            study.tell(frozen.number, [float(v) for v in values if v is not None])
        told += 1
    return told


def refused_count(storage_url: str, study_name: str) -> int:
    """The configurations a size cap refused before training (told PRUNED, marked ``refused``; a repeat of one
    is told as its twin and not counted again)."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    return sum(1 for t in study.get_trials(deepcopy=False) if INFEASIBLE_ATTR in t.user_attrs)
