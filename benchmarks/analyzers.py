"""Convergence analysis of search runs: best-so-far curves against compute, their spread, compute to a target.

Plain tables in, plain tables out (tested exactly); :mod:`benchmarks.plots` draws them. The input is an
*events* table, one row per epoch a run trained, in the order the epochs were spent, with the columns
``method``, ``seed`` and ``value`` (the metric that epoch reached; lower is better), and optionally ``seconds``
(the simulated wall-clock time at which that epoch finished). Compute is counted in epochs: the n-th event of a
run has spent n epochs; and, where the events have them, in seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from analysis import inference

RUN = ["method", "seed"]
PERMUTATIONS = 9999  # a rank test with more arrangements than this samples them (seeded); fewer are enumerated
TARGET_SLACK = 0.05  # "within 5% of the best known value"


def best_so_far(events: pd.DataFrame) -> pd.DataFrame:
    """Add ``spent`` (epochs so far, 1-based) and ``best`` (lowest value so far) to each run's events."""
    out = events.copy()
    out["spent"] = out.groupby(RUN, sort=False).cumcount() + 1
    out["best"] = out.groupby(RUN, sort=False)["value"].cummin()
    return out


def on_budget_grid(curves: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Each run's best-so-far at spent = 1..budget; a run that ended sooner keeps its last best (it is done)."""
    frames = []
    spent = pd.RangeIndex(1, budget + 1, name="spent")
    for (method, seed), run in curves.groupby(RUN, sort=False):
        best = run.set_index("spent")["best"]
        best = best[best.index <= budget].reindex(spent).ffill()
        frames.append(pd.DataFrame({"method": method, "seed": seed, "spent": spent, "best": best.to_numpy()}))
    return pd.concat(frames, ignore_index=True)


def summarize(grid: pd.DataFrame) -> pd.DataFrame:
    """Per method and epoch spent: the median best-so-far over seeds and its 25th-75th percentile band."""
    grouped = grid.groupby(["method", "spent"], sort=False)["best"]
    out = grouped.agg(median="median", q25=lambda s: s.quantile(0.25), q75=lambda s: s.quantile(0.75), n="count")
    return out.reset_index()


def epochs_to_target(curves: pd.DataFrame, target: float, budget: int) -> pd.DataFrame:
    """Per run: the epochs spent (and, with a ``seconds`` column, the time) when its best first reached ``target``
    (inf when not within the budget)."""
    rows = []
    for (method, seed), run in curves.groupby(RUN, sort=False):
        hit = run[(run["best"] <= target) & (run["spent"] <= budget)]
        row = {"method": method, "seed": seed, "epochs": float(hit["spent"].iloc[0]) if len(hit) else math.inf}
        if "seconds" in run.columns:
            row["seconds"] = float(hit["seconds"].iloc[0]) if len(hit) else math.inf
        rows.append(row)
    return pd.DataFrame(rows)


def compute_table(curves: pd.DataFrame, best_known: float, budget: int, target: float | None = None) -> pd.DataFrame:
    """One row per method: compute to reach ``target`` (default: within 5% of ``best_known``), and the best reached
    at the budget.

    ``epochs_median`` treats a run that never reached the target as needing more than the budget (inf), so it
    is inf when half the runs or more did not reach it.
    """
    target = best_known * (1 + TARGET_SLACK) if target is None else target
    hits = epochs_to_target(curves, target, budget)
    finals = on_budget_grid(curves, budget).query("spent == @budget")
    rows = []
    for method, runs in hits.groupby("method", sort=False):
        epochs = runs["epochs"].to_numpy()
        reached = epochs[np.isfinite(epochs)]
        final = finals.loc[finals["method"] == method, "best"]
        row = {
            "method": method,
            "reached": f"{len(reached)}/{len(epochs)}",
            "epochs_median": float(np.median(epochs)),
            "epochs_min": float(reached.min()) if len(reached) else math.inf,
            "epochs_max": float(reached.max()) if len(reached) else math.inf,
        }
        if "seconds" in runs.columns:
            seconds = runs["seconds"].to_numpy()
            done = seconds[np.isfinite(seconds)]
            row.update(seconds_median=float(np.median(seconds)),
                       seconds_min=float(done.min()) if len(done) else math.inf,
                       seconds_max=float(done.max()) if len(done) else math.inf)
        row.update(final_median=float(final.median()), final_q25=float(final.quantile(0.25)),
                   final_q75=float(final.quantile(0.75)), final_gap=float(final.median() / best_known - 1))
        rows.append(row)
    return pd.DataFrame(rows)


def is_monotone(curves: pd.DataFrame) -> bool:
    """True when every run's best-so-far never increases (what :func:`best_so_far` guarantees)."""
    return all((np.diff(run["best"].to_numpy()) <= 0).all() for _, run in curves.groupby(RUN, sort=False))


def against_best(finals: pd.DataFrame, margin: float, alpha: float = inference.ALPHA) -> pd.DataFrame:
    """Each method's per-seed outcomes (``finals``: method, seed, best, e.g. the best value at the budget) against
    those of the best method (the lowest median; then the lowest mean; then the first).

    A method is ``worse`` when its values are larger than the best method's values scaled by ``1 + margin`` (a
    practical margin, e.g. the table's own seed noise: a gap smaller than the training noise is no finding):
    a one-sided Mann-Whitney U test over the seeds (exact by enumeration for small samples, ties handled), its
    p-values Holm-adjusted over the K - 1 methods. Otherwise ``no difference detected`` (which does not show the
    two equal); ``""`` and NaN for a method with fewer than 2 seeds. Columns: method, n, p_vs_best, vs_best.
    """
    values = {m: g["best"].to_numpy(dtype=float) for m, g in finals.groupby("method", sort=False)}
    methods = list(values)
    rows = pd.DataFrame({"method": methods, "n": [len(values[m]) for m in methods], "p_vs_best": np.nan,
                         "vs_best": ""})
    if not methods:
        return rows
    order = np.lexsort(([float(np.mean(values[m])) for m in methods], [float(np.median(values[m])) for m in methods]))
    best = methods[int(order[0])]
    rows.loc[rows["method"] == best, "vs_best"] = inference.BEST
    others = [m for m in methods if m != best]
    raw = [_larger_p(values[m], values[best] * (1 + margin)) for m in others]
    for method, p in zip(others, inference.holm(raw), strict=True):
        if not np.isnan(p):
            rows.loc[rows["method"] == method, ["p_vs_best", "vs_best"]] = [
                p, inference.WORSE if p < alpha else inference.NO_DIFFERENCE]
    return rows


def _larger_p(x: np.ndarray, y: np.ndarray) -> float:
    """One-sided p of the Mann-Whitney U test that ``x`` tends to be larger than ``y``; NaN below 2 values a side."""
    if len(x) < 2 or len(y) < 2:
        return math.nan
    method = stats.PermutationMethod(n_resamples=PERMUTATIONS, rng=np.random.default_rng(0))
    return float(stats.mannwhitneyu(x, y, alternative="greater", method=method).pvalue)
