"""Sweep controls read before a study exists: configurations to train first (``--enqueue``) and earlier studies'
finished trials to tell the sampler (``--warm-start``). Both are checked whole before anything is written, and
both become Optuna trials of the new study when it starts (:func:`apply`).

Enqueued configurations are Optuna's ``enqueue_trial``: trained first, in order; a partial one is completed by
the sampler. Warm-start trials are Optuna's ``add_trials``: finished trials with their values and states, marked
``imported_from`` (``study/trial_id``). They never ran in this study: they have no Ray trial, so they are in
none of its tables, never counted towards its trials, never ranked, and a proposal equal to one is told its
outcome instead of being trained. Only what is plain data is read from an earlier study: its ``study.json`` and
``trials.csv`` (the trials' resolved configurations), never its pickles.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

import results
from cae import plain_yaml
from cae.errors import CaesweepError, StudyError, UsageError
from results.trials import search_trials
from search.searcher import IMPORTED_ATTR
from spaces import Space

MAX_ENQUEUED = 10_000
_STATES = {results.COMPLETE: optuna.trial.TrialState.COMPLETE, results.PRUNED: optuna.trial.TrialState.PRUNED,
           results.FAILED: optuna.trial.TrialState.FAIL}


@dataclass(frozen=True)
class WarmStart:
    """What earlier studies give a new one: their finished trials as Optuna trials, and what was left out."""

    studies: tuple[str, ...] = ()
    trials: tuple[optuna.trial.FrozenTrial, ...] = ()
    skipped: Mapping[str, int] = field(default_factory=dict)  # reason -> how many trials

    def line(self) -> str:
        """One line for the terminal: how many trials of which studies, and how many were left out and why."""
        left = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        return (f"warm start: {len(self.trials)} finished trials of {', '.join(self.studies)} told to the sampler"
                + (f" ({left}: skipped)" if left else "") + "; none of them is trained, counted or ranked here")

    def record(self) -> dict[str, Any]:
        return {"studies": list(self.studies), "imported": len(self.trials), "skipped": dict(self.skipped)}


def read_enqueue(path: str, space: Space) -> tuple[dict[str, Any], ...]:
    """The configurations of a ``--enqueue`` file: a YAML list of mappings of the space's searched keys to values
    on their axes (a partial mapping is completed by the sampler); any other file is one :class:`UsageError`."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--enqueue {path}: no such file; give a YAML list of configurations")
    try:
        document = plain_yaml.load_file(file)
    except CaesweepError as exc:
        raise UsageError(f"--enqueue {path}: {exc}") from None
    if not isinstance(document, list) or not document or not all(isinstance(c, dict) for c in document):
        raise UsageError(f"--enqueue {path}: write a YAML list of configurations, e.g. `- {{lr: 0.001, "
                         "latent_dim: 64}`, one per line")
    if len(document) > MAX_ENQUEUED:
        raise UsageError(f"--enqueue {path}: {len(document)} configurations; at most {MAX_ENQUEUED}")
    for index, config in enumerate(document, start=1):
        try:
            space.check_values(config, f"--enqueue {path}, configuration {index}")
        except CaesweepError as exc:
            raise UsageError(str(exc)) from None
    return tuple(dict(c) for c in document)


def read_warm_start(
    references: Sequence[str], root: Path, space: Space, fixed: Mapping[str, Any], objectives: Sequence[str]
) -> WarmStart:
    """The finished trials of the studies named (a study under ``root``, or a study folder) whose configurations
    this space can draw, as Optuna trials of a study with ``objectives``; an unknown study is a UsageError."""
    trials: list[optuna.trial.FrozenTrial] = []
    skipped: Counter[str] = Counter()
    names = []
    distributions = space.distributions()
    for reference in references:
        study = _load(reference, root)
        names.append(study.name)
        settings = {k: study.meta.get(k) for k in ("task", "data", "image_size")}
        if any(settings[k] is not None and str(settings[k]) != str(fixed.get(k)) for k in settings):
            skipped["of another task or data"] += len(search_trials(study.trials))
            continue
        for row in search_trials(study.trials).to_dict("records"):
            frozen = _frozen(row, study.name, space, distributions, objectives, fixed)
            if isinstance(frozen, str):
                skipped[frozen] += 1
            else:
                trials.append(frozen)
    return WarmStart(tuple(names), tuple(trials), dict(skipped))


def _load(reference: str, root: Path) -> results.Study:
    """A study named under ``root``, or (when ``reference`` is a path holding a study.json) the folder itself."""
    folder = Path(reference)
    try:
        if (folder / "study.json").is_file():
            paths = results.study_paths(folder.resolve().name, folder.resolve().parent)
        else:
            paths = results.study_paths(reference, root)
    except StudyError:
        paths = None
    if paths is None or not paths.meta.is_file():
        raise UsageError(f"--warm-start {reference}: no study of that name under {root} and no study folder at "
                         "that path; give a study name under --root or a study folder")
    try:
        return results.load_study(paths)
    except StudyError as exc:
        raise UsageError(f"--warm-start {reference}: {exc}") from None


def _frozen(
    row: Mapping[str, Any], study: str, space: Space, distributions: Mapping[str, Any], objectives: Sequence[str],
    settings: Mapping[str, Any],
) -> optuna.trial.FrozenTrial | str:
    """A finished trial of another study as an Optuna trial of this space, or why it is left out."""
    state = _STATES.get(str(row.get("status")))
    if state is None:
        return "not finished"
    flat = {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
    raw = space.raw_from_flat(flat, settings)
    if raw is None:
        return "outside the space"
    values: list[float] | None = None
    if state == optuna.trial.TrialState.COMPLETE:
        found = [row.get(metric) for metric in objectives]
        if any(not isinstance(v, int | float) or pd.isna(v) or not math.isfinite(float(v)) for v in found):
            return "without the objective"
        values = [float(v) for v in found if isinstance(v, int | float)]
    return optuna.trial.create_trial(
        state=state, values=values, params=raw, distributions={k: distributions[k] for k in raw},
        user_attrs={IMPORTED_ATTR: f"{study}/{row.get('trial_id')}"},
    )


def apply(storage_url: str, name: str, enqueued: Sequence[Mapping[str, Any]], warm: WarmStart | None) -> None:
    """Give a new study's Optuna study its warm-start trials, then its enqueued configurations (in order)."""
    if not enqueued and (warm is None or not warm.trials):
        return
    from search.storage import open_storage

    study = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    if warm is not None and warm.trials:
        study.add_trials(list(warm.trials))
    for config in enqueued:
        study.enqueue_trial(dict(config), user_attrs={"enqueued": True})
