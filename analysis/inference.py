"""The tests behind every comparison a report or a benchmark makes (scipy.stats underneath).

A comparison is a test, not a look at two intervals: :func:`welch` tests a difference of two means,
:func:`holm` corrects a family of such tests for their number, and :func:`against_best` puts both together to
compare K configurations with the best of them (K - 1 tests). :func:`slope` fits a straight line with one
intercept per group and gives the slope's interval, for claims about a trend (or its absence).

"No difference detected" means that the test did not find one at :data:`ALPHA` after correction: with a few
values per side it misses differences of several standard deviations, so it never shows that two things are
equal. Showing that needs an equivalence bound (:func:`slope`'s interval inside a declared margin).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats

ALPHA = 0.05  # two-sided, for the family of comparisons after Holm's correction
BEST, NO_DIFFERENCE, WORSE = "best", "no difference detected", "worse"
VS_BEST = (BEST, NO_DIFFERENCE, WORSE)


def finite(values: Iterable[float]) -> np.ndarray:
    """The finite values of ``values`` as floats (a diverged seed's NaN is not a value)."""
    x = np.asarray(list(values), dtype=float)
    return x[np.isfinite(x)]


def welch(a: Iterable[float], b: Iterable[float]) -> float:
    """Two-sided p-value of Welch's t-test of the means of ``a`` and ``b`` (unequal variances).

    NaN when a side has fewer than 2 finite values (no spread to judge a gap against). Without any spread on
    either side the values are deterministic and told apart exactly: 1.0 for equal means, 0.0 otherwise.
    """
    x, y = finite(a), finite(b)
    if len(x) < 2 or len(y) < 2:
        return math.nan
    if x.std() == 0 and y.std() == 0:
        return 1.0 if x.mean() == y.mean() else 0.0
    return float(stats.ttest_ind(x, y, equal_var=False).pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN and does not count in the family).

    The i-th smallest of m p-values is multiplied by m - i + 1, the results are made non-decreasing in that
    order and capped at 1: rejecting where the adjusted value is below alpha keeps the chance of any false
    rejection in the family at alpha (scipy has only the false-discovery-rate corrections).
    """
    p = np.asarray(list(p_values), dtype=float)
    out = np.full(len(p), math.nan)
    known = np.flatnonzero(np.isfinite(p))
    m = len(known)
    running = 0.0
    for rank, index in enumerate(known[np.argsort(p[known], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out.tolist()


def against_best(groups: Sequence[Iterable[float]], mode: str, alpha: float = ALPHA) -> tuple[list[str], list[float]]:
    """Each group of values against the group with the best mean (lowest for ``mode`` min, highest for max).

    Only groups with at least 2 finite values take part; the best is the one with the best mean among them
    (the first on a tie). Each other group is tested against it with :func:`welch`, and the K - 1 p-values are
    adjusted together with :func:`holm`. Returns, per group, :data:`BEST`, :data:`WORSE` (adjusted p below
    ``alpha``) or :data:`NO_DIFFERENCE`, and the adjusted p-value; ``""`` and NaN for a group that does not
    take part. With fewer than 2 groups taking part nothing is compared: every label is ``""``.
    """
    values = [finite(g) for g in groups]
    tested = [i for i, v in enumerate(values) if len(v) >= 2]
    labels, p_out = [""] * len(values), [math.nan] * len(values)
    if len(tested) < 2:
        return labels, p_out
    means = [float(values[i].mean()) for i in tested]
    best = tested[int(np.argmin(means) if mode == "min" else np.argmax(means))]
    others = [i for i in tested if i != best]
    adjusted = holm([welch(values[i], values[best]) for i in others])
    labels[best] = BEST
    for i, p in zip(others, adjusted, strict=True):
        labels[i], p_out[i] = (WORSE if p < alpha else NO_DIFFERENCE), p
    return labels, p_out


class Slope(NamedTuple):
    """A straight line's slope with one intercept per group, and its two-sided interval."""

    slope: float
    low: float
    high: float
    confidence: float
    n: int
    groups: int
    df: int  # residual degrees of freedom: n - groups - 1

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def slope(x: Sequence[float], y: Sequence[float], groups: Sequence[object], confidence: float = 0.95) -> Slope:
    """Least squares of ``y`` on ``x`` with one intercept per value of ``groups`` (a fixed effect), and the
    slope's ``confidence`` interval from Student's t with n - groups - 1 degrees of freedom.

    The groups take out what differs between them (e.g. each filter list's own MSE level), so the slope is the
    common trend within groups. NaN slope and interval when there are no residual degrees of freedom or ``x``
    does not vary within any group.
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    labels = [str(g) for g in groups]
    levels = sorted(set(labels))
    design = np.column_stack([xs, *[[1.0 if g == level else 0.0 for g in labels] for level in levels]])
    n, k = design.shape
    df = n - k
    nan = Slope(math.nan, math.nan, math.nan, confidence, n, len(levels), max(df, 0))
    if df < 1 or np.linalg.matrix_rank(design) < k:
        return nan
    coef, _, _, _ = np.linalg.lstsq(design, ys, rcond=None)
    residual = ys - design @ coef
    variance = float(residual @ residual) / df
    se = math.sqrt(variance * float(np.linalg.inv(design.T @ design)[0, 0]))
    half = float(stats.t.ppf(1 - (1 - confidence) / 2, df)) * se
    return Slope(float(coef[0]), float(coef[0]) - half, float(coef[0]) + half, confidence, n, len(levels), df)
