"""A study's trial table as an in-memory Optuna study, so Optuna's own plots can draw it.

Optuna's visualizations (slice, parallel coordinates, contour, intermediate values) already place numeric
hyperparameters on numeric axes, log-scaled where the distribution is, and categorical ones as categories;
they need trials with *distributions*. Those come from the search space stored in ``study.json`` (the one
the study ran), so an axis is logarithmic exactly when the space samples it on a log scale. A searched column
the space does not declare (derived ones such as ``depth``) becomes a categorical axis over the values seen.

The study is built from the tables (``trials.csv``, ``history.csv``), not from the sweep's storage: it
works for every engine (keras-tuner studies have no Optuna storage) and for any ranking metric (``--metric
test_mse``), and it reads nothing but what ``results`` loaded.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from cae.errors import CaesweepError
from results import COMPLETE, FAILED, PRUNED
from spaces import space_from_dict

_STATES = {COMPLETE: TrialState.COMPLETE, PRUNED: TrialState.PRUNED, FAILED: TrialState.FAIL}


def distributions(meta: Mapping[str, Any], trials: pd.DataFrame, params: Sequence[str]) -> dict[str, BaseDistribution]:
    """Each of ``params``' distribution: the stored space's where it declares one that holds every value seen,
    otherwise categorical over the values seen (in sorted order)."""
    declared = _declared(meta)
    out: dict[str, BaseDistribution] = {}
    for param in params:
        seen = [_plain(v) for v in trials[param].dropna().unique()] if param in trials else []
        if not seen:
            continue
        distribution = declared.get(param)
        if distribution is None or not all(_holds(distribution, v) for v in seen):
            distribution = CategoricalDistribution(sorted(set(seen), key=lambda v: (isinstance(v, str), v)))
        out[param] = distribution
    return out


def is_numeric(distribution: BaseDistribution) -> bool:
    """A range, or choices that are all numbers (Optuna draws those on a numeric axis too)."""
    if isinstance(distribution, CategoricalDistribution):
        return all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in distribution.choices)
    return True


def _declared(meta: Mapping[str, Any]) -> dict[str, BaseDistribution]:
    """The distributions the stored space declares (per-level filter lists are not one axis: none)."""
    try:
        space = space_from_dict(meta.get("space") or {})
    except CaesweepError:
        return {}  # a space this version cannot read: fall back to the values seen
    out: dict[str, BaseDistribution] = {}
    for p in space.params:
        if p.per_level:
            continue
        if p.kind == "categorical":
            out[p.name] = CategoricalDistribution(list(p.choices))
        elif p.kind == "int":
            out[p.name] = IntDistribution(int(p.low), int(p.high), log=p.log, step=int(p.step or 1))  # type: ignore[arg-type]
        else:
            out[p.name] = FloatDistribution(float(p.low), float(p.high), log=p.log, step=p.step)  # type: ignore[arg-type]
    return out


def _plain(value: Any) -> Any:
    """A table cell as Optuna stores a parameter: NumPy scalars as Python ones, whole floats of an int column
    (read back from a CSV with gaps) as ints."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _holds(distribution: BaseDistribution, value: Any) -> bool:
    if isinstance(distribution, CategoricalDistribution):
        return value in distribution.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return distribution.low <= value <= distribution.high  # type: ignore[attr-defined]


def _param_value(distribution: BaseDistribution, value: Any) -> Any:
    """``value`` as the distribution takes it: the matching choice object, or a number of the right type."""
    if isinstance(distribution, CategoricalDistribution):
        return next(c for c in distribution.choices if c == value)
    return int(value) if isinstance(distribution, IntDistribution) else float(value)


def search_study(
    trials: pd.DataFrame, history: pd.DataFrame, dists: Mapping[str, BaseDistribution], metric: str, mode: str,
    curve: str,
) -> optuna.Study:
    """An in-memory Optuna study of the finished, pruned and failed trials (in trial order): their parameters,
    ``metric`` as the value of the complete ones, and ``history``'s per-epoch ``curve`` column (a validation
    metric) as intermediate values (those of pruned trials show where the scheduler stopped them)."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)  # "A new study created in memory" is noise here
    try:
        study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    curves = _curves(history, curve)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([metric])
    for _, row in trials.iterrows():
        state = _STATES.get(str(row["status"]))
        value = row.get(metric)
        if state is None or (state == TrialState.COMPLETE and not _finite(value)):
            continue
        params = {p: _param_value(d, _plain(row[p])) for p, d in dists.items() if pd.notna(row.get(p))}
        study.add_trial(optuna.trial.create_trial(
            state=state,
            value=float(value) if state == TrialState.COMPLETE else None,
            params=params,
            distributions={p: dists[p] for p in params},
            intermediate_values=curves.get(str(row["trial_id"]), {}),
            user_attrs={"trial_id": str(row["trial_id"])},
        ))
    return study


def _curves(history: pd.DataFrame, metric: str) -> dict[str, dict[int, float]]:
    """trial id -> {epoch: metric} for the finite values of the history (the validation curve of the metric)."""
    if metric not in history:
        return {}
    rows = history[["trial_id", "epoch", metric]].dropna()
    return {
        str(trial_id): {int(e): float(v) for e, v in zip(group["epoch"], group[metric], strict=True) if _finite(v)}
        for trial_id, group in rows.groupby("trial_id")
    }


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
