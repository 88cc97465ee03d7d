"""Compute every table and finding of a report from loaded studies (no drawing, no formatting, no files).

:func:`study_report` reads one :class:`results.Study`; :func:`comparison` puts several side by side. Which
hyperparameters are compared comes from the study's own metadata: ``params`` (what was searched) and
``roles`` (scientific / nuisance / fixed, the tuning playbook's vocabulary). A comparison table is made for
every searched hyperparameter that actually varied among the finished trials; the "best nuisance setting"
tables are made for the scientific ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution

from analysis import findings, tables
from analysis.importance import Importance, importance
from analysis.metrics import study_mode
from analysis.optuna_view import distributions, is_numeric, search_study
from results import PRUNED, Study

CURVES = 5  # learning curves are drawn for this many of the leaderboard's trials
COSTS = ("params", "train_seconds")  # the Pareto fronts: metric vs size and vs training time
CURVE_METRIC = "val_mse"  # the per-epoch curve of every trial when the ranking metric has none (test_*, skill)
# Pairs tried, in order, for the two-way pivot; otherwise the first two varying scientific hyperparameters.
PIVOTS = (("filters", "kernel_size"), ("depth", "kernel_size"), ("filters", "latent_dim"), ("task", "loss"))
# Without roles in study.json: these are tuned for fairness, everything else searched is compared.
DEFAULT_NUISANCE = frozenset({"lr", "batch_size", "patience", "seed"})


@dataclass(frozen=True)
class StudyReport:
    """Everything a report says about one study, as tables and sentences."""

    name: str
    meta: dict[str, Any]
    metric: str
    mode: str
    trials: pd.DataFrame  # the search's trial table (seed repeats apart), metric columns numeric
    repeats: pd.DataFrame  # the seed repeats of `python -m search confirm`, in any status
    done: pd.DataFrame  # finished search trials with the metric, ranked best first
    status: pd.DataFrame
    failures: pd.DataFrame
    leaderboard: pd.DataFrame
    seeds: pd.DataFrame  # per configuration with seed repeats: mean, std, 95 % CI over fresh seeds, tested vs best
    scientific: list[str]  # searched, varying, role scientific (in study order)
    nuisance: list[str]  # searched, varying, role nuisance
    groups: dict[str, pd.DataFrame]  # hyperparameter -> mean/std/n/best/pruned per value, each tested vs the best
    pivot: tuple[str, str] | None
    pivot_mean: pd.DataFrame | None
    pivot_count: pd.DataFrame | None
    best_nuisance: dict[str, pd.DataFrame]  # scientific hyperparameter -> best nuisance setting per value
    correlations: pd.DataFrame
    importance: Importance
    pareto: dict[str, pd.DataFrame]  # cost column -> Pareto set
    history: pd.DataFrame
    curves: pd.DataFrame
    search: optuna.Study  # the trials as an in-memory Optuna study, for Optuna's plots (analysis.optuna_view)
    contour: tuple[str, str] | None  # the two numeric hyperparameters to draw a contour over (most important first)
    curve_metric: str  # the history column that is each trial's intermediate value in ``search``
    tensorboard: str | None  # the study's TensorBoard log dir, None when its trials wrote no logs
    findings: list[str] = field(default_factory=list)

    @property
    def compared(self) -> list[str]:
        """Every hyperparameter that has a comparison table: scientific first, then nuisance and others."""
        return list(self.groups)


def study_report(study: Study, metric: str, top: int) -> StudyReport:
    """Every table and finding for ``study``, ranking finished trials by ``metric``."""
    mode = study_mode(study.meta, metric)  # as the study was run with, when the metric is one of its objectives
    everything = tables.prepare_trials(study.trials)
    trials, repeats = tables.search_trials(everything), tables.repeat_trials(everything)
    done = tables.rank(tables.finished(trials, metric), metric, mode)
    seeds = tables.seed_statistics(done, repeats, metric, mode)
    searched = [p for p in study.meta.get("params") or study.param_columns if p in trials.columns]
    roles = study.roles() or {p: "nuisance" if p in DEFAULT_NUISANCE else "scientific" for p in searched}
    moving = tables.varying(done, searched)
    scientific = [p for p in moving if roles.get(p, "scientific") == "scientific"]
    nuisance = [p for p in moving if roles.get(p) == "nuisance"]
    compared = [*scientific, *nuisance, *(p for p in moving if p not in scientific and p not in nuisance)]
    shown = [p for p in compared if p not in tables.IN_ARCHITECTURE]
    board = tables.leaderboard(done, metric, mode, top, extra=shown, seeds=seeds)
    pivot = _pivot_pair(scientific or compared)
    curve = metric if metric in study.history.columns else CURVE_METRIC
    logs = study.paths.tensorboard_dir
    dists = distributions(study.meta, trials, compared)
    ranked = importance(done, compared, metric, mode)
    pruned = trials[trials["status"] == PRUNED]
    report = StudyReport(
        name=study.name,
        meta=study.meta,
        metric=metric,
        mode=mode,
        trials=trials,
        repeats=repeats,
        done=done,
        status=tables.status_counts(trials, metric),
        failures=tables.failure_reasons(trials),
        leaderboard=board,
        seeds=seeds,
        scientific=scientific,
        nuisance=nuisance,
        groups={p: tables.group_summary(done, p, metric, mode, pruned) for p in compared},
        pivot=pivot,
        pivot_mean=None if pivot is None else tables.pivot(done, *pivot, metric),
        pivot_count=None if pivot is None else tables.pivot(done, *pivot, metric, how="count"),
        best_nuisance={p: tables.best_nuisance(done, p, nuisance, metric, mode) for p in scientific},
        correlations=tables.correlations(done, compared, metric),
        importance=ranked,
        pareto={c: tables.pareto(done, metric, mode, c) for c in COSTS},
        history=tables.optimization_history(trials, metric, mode),
        curves=tables.learning_curves(study.history, board.head(CURVES)),
        search=search_study(trials, study.history, dists, metric, mode, curve),
        contour=_contour_pair([*ranked.table["param"], *compared], dists),
        curve_metric=curve,
        tensorboard=str(logs) if study.paths.tensorboard_runs() else None,
    )
    return replace(report, findings=study_findings(report))


def _pivot_pair(candidates: Sequence[str]) -> tuple[str, str] | None:
    for pair in PIVOTS:
        if all(p in candidates for p in pair):
            return pair
    return (candidates[0], candidates[1]) if len(candidates) >= 2 else None


def _contour_pair(candidates: Sequence[str], dists: Mapping[str, BaseDistribution]) -> tuple[str, str] | None:
    """The first two numeric hyperparameters of ``candidates`` (a contour between categories interpolates
    along an order that does not exist)."""
    numeric = list(dict.fromkeys(p for p in candidates if p in dists and is_numeric(dists[p])))
    return (numeric[0], numeric[1]) if len(numeric) >= 2 else None


def study_findings(report: StudyReport) -> list[str]:
    """The report's sentences, most important first."""
    n = len(report.done)
    sampler = report.meta.get("sampler")
    sentences = findings.status(report.status, report.failures, report.meta.get("status"))
    sentences += findings.best(report.done, report.metric)
    sentences += findings.seeds(report.seeds, report.repeats, tables.seed_metric(report.metric),
                                report.meta.get("confirm"))
    sentences += findings.beat_baseline(report.done)
    sentences += findings.colorfulness(report.done, report.metric, report.meta.get("task"))
    sentences += findings.importance(report.importance, report.metric, n)
    sentences += findings.groups({p: report.groups[p] for p in report.scientific}, report.metric, report.mode,
                                 sampler)
    sentences += findings.correlations(report.correlations, report.metric, report.mode, sampler)
    for cost, front in report.pareto.items():
        sentences += findings.pareto(front, report.metric, cost, n)
    return sentences


@dataclass(frozen=True)
class Comparison:
    """Several studies side by side."""

    metric: str
    mode: str
    table: pd.DataFrame
    findings: list[str]


def comparison(reports: Sequence[StudyReport]) -> Comparison:
    """One row per study (counts, best and median metric, best architecture, skill, compute) and a verdict."""
    metric, mode = reports[0].metric, reports[0].mode
    table = tables.compare_studies([tables.study_row(r.name, r.meta, r.trials, metric, mode) for r in reports])
    return Comparison(metric, mode, table, findings.comparison(table, metric, mode))
