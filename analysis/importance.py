"""Which hyperparameters matter: Optuna's importance evaluators run on the finished trials of a study.

The trial table is turned into an in-memory Optuna study (one ``create_trial`` per finished trial, with a
distribution inferred per column), so the same evaluators work for either engine and for a study whose
Optuna storage is gone. Two evaluators, because they disagree on small studies and the disagreement is
itself informative: fANOVA (a random forest's variance decomposition, seeded) and PED-ANOVA (how much the
top quantile's parameter distribution differs from the whole).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

MIN_TRIALS = 4  # below this no evaluator says anything useful
MAX_CATEGORIES = 6  # a numeric column with at most this many distinct values is treated as categorical
LOG_PARAMS = frozenset({"lr"})  # searched on a log scale
PED_ANOVA_QUANTILE = 0.25  # "good" trials: the best quarter (Optuna's 0.1 leaves 1-2 trials in small studies)
SEED = 0  # fANOVA's random forest, and the draw of MAX_TRIALS trials
# fANOVA's forest grows with the trials (~20 s of CPU at 300 here, minutes at 2,000): a larger study is estimated
# on this many of its finished trials, drawn at random, which keeps the report quick at any size.
MAX_TRIALS = 400


@dataclass(frozen=True)
class Importance:
    """Importance per hyperparameter (columns param, fanova, ped_anova; sorted by fanova), or why there is none."""

    table: pd.DataFrame
    note: str = ""  # why the table is empty, or a caveat on its numbers


def importance(
    done: pd.DataFrame, params: Sequence[str], metric: str, mode: str, max_trials: int = MAX_TRIALS
) -> Importance:
    """Estimate the importance of ``params`` for ``metric`` over the finished trials ``done`` (at most
    ``max_trials`` of them, drawn at random with :data:`SEED`)."""
    empty = pd.DataFrame(columns=["param", "fanova", "ped_anova"])
    varying = [p for p in params if p in done.columns and done[p].nunique(dropna=True) > 1]
    rows = done.dropna(subset=varying)
    if len(rows) < MIN_TRIALS:
        trials = "1 finished trial" if len(rows) == 1 else f"{len(rows)} finished trials"
        return Importance(empty, f"importance cannot be estimated from {trials} (needs at least {MIN_TRIALS})")
    if len(varying) < 2:
        what = "no hyperparameter varies" if not varying else f"only {varying[0]} varies"
        return Importance(empty, f"importance cannot be estimated: {what} among the finished trials")
    note = ""
    if len(rows) > max_trials:
        note = (f"importance estimated on {max_trials} of the {len(rows)} finished trials, drawn at random "
                f"(seed {SEED})")
        rows = rows.sample(n=max_trials, random_state=SEED).sort_index()
    study = to_optuna_study(rows, varying, metric, mode)
    evaluators = {
        "fanova": optuna.importance.FanovaImportanceEvaluator(seed=SEED),
        "ped_anova": optuna.importance.PedAnovaImportanceEvaluator(target_quantile=PED_ANOVA_QUANTILE),
    }
    scores = {name: _evaluate(study, evaluator) for name, evaluator in evaluators.items()}
    table = pd.DataFrame({"param": varying})
    for name, values in scores.items():
        table[name] = table["param"].map(values).astype(float)
    table = table.sort_values(["fanova", "ped_anova"], ascending=False, kind="stable").reset_index(drop=True)
    return Importance(table, note)


def _evaluate(study: optuna.Study, evaluator: optuna.importance.BaseImportanceEvaluator) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature and small-sample warnings: the note says it
        return optuna.importance.get_param_importances(study, evaluator=evaluator)


def to_optuna_study(done: pd.DataFrame, params: Sequence[str], metric: str, mode: str) -> optuna.Study:
    """An in-memory Optuna study holding one COMPLETE trial per row of ``done``."""
    distributions = {p: distribution(p, done[p]) for p in params}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)  # "A new study created in memory" is noise here
    try:
        study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    for _, row in done.iterrows():
        values = {p: _value(row[p], distributions[p]) for p in params}
        study.add_trial(optuna.trial.create_trial(params=values, distributions=distributions, value=float(row[metric])))
    return study


def distribution(name: str, values: pd.Series) -> BaseDistribution:
    """The distribution a column was (most likely) searched from: categorical for text, booleans and numbers
    with few distinct values; log-float for the learning rate; int or float ranges otherwise."""
    present = values.dropna()
    numeric = pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present)
    if not numeric or present.nunique() <= MAX_CATEGORIES and name not in LOG_PARAMS:
        return CategoricalDistribution(sorted({_plain(v) for v in present}, key=str))
    low, high = float(present.min()), float(present.max())
    if name in LOG_PARAMS and low > 0:
        return FloatDistribution(low, high, log=True)
    if np.all(np.mod(present, 1) == 0):
        return IntDistribution(int(low), int(high))
    return FloatDistribution(low, high)


def _value(value: Any, dist: BaseDistribution) -> Any:
    if isinstance(dist, IntDistribution):
        return int(value)
    if isinstance(dist, FloatDistribution):
        return float(value)
    return _plain(value)


def _plain(value: Any) -> Any:
    # Optuna's categorical choices must be None, bool, int, float or str; numpy scalars are not.
    return value.item() if isinstance(value, np.generic) else value
