"""What a published claim's verdict rests on: training-seed noise and whether the compared models have learned.

A reproduction compares configurations trained with several fresh training seeds each (``search confirm``;
the search's own run of a configuration won its selection on its scores, so it is no evidence for itself and
is left out), so a difference between two of them is set against the spread of the seeds: :func:`compare`
runs Welch's t-test (:func:`analysis.inference.welch`) on the two sets of values and says which is lower, if the
data can tell; a claim that makes several comparisons corrects them with Holm's method. A claim then gets one
of four verdicts (:data:`VERDICTS`): it HOLDS (every comparison it makes goes its way beyond the noise), it DOES
NOT HOLD (one goes the other way beyond the noise), it is NOT DISTINGUISHABLE (no difference detected: the
differences are inside the noise, which does not show them equal), or it is UNDECIDED: too little finished to
compare, or the compared models are not trained (:func:`unready`), or the interval is too wide to decide.

:func:`last_third_gain` measures flattening: how much a learning curve's best value still improved over its
last third of epochs. A verdict on models that are still improving, or that do not beat their baselines,
describes early training, not the models: :func:`unready` says why such a claim is UNDECIDED.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from analysis import inference

HOLDS, DOES_NOT_HOLD, NOT_DISTINGUISHABLE, UNDECIDED = "HOLDS", "DOES NOT HOLD", "NOT DISTINGUISHABLE", "UNDECIDED"
VERDICTS = (HOLDS, DOES_NOT_HOLD, NOT_DISTINGUISHABLE, UNDECIDED)
SIGNIFICANCE = inference.ALPHA  # two-sided, per comparison or per family after Holm's correction
FLAT_GAIN = 0.02  # a curve has flattened when its best improved by less than 2 % over its last third


class Comparison(NamedTuple):
    """Two sets of seed values of one metric (lower is better): which is lower, and whether beyond the noise."""

    mean_a: float
    sd_a: float
    n_a: int
    mean_b: float
    sd_b: float
    n_b: int
    p: float  # Welch's t-test, two-sided; NaN when a side has fewer than 2 values
    lower: str  # "a", "b" or "neither" (not significant at SIGNIFICANCE, or too few values to test)

    @property
    def ratio(self) -> float:
        """mean b / mean a."""
        return self.mean_b / self.mean_a if self.mean_a else math.nan

    def describe(self, a: str, b: str) -> str:
        """E.g. ``32-64 0.0123 ± 0.0004 (n 3) vs 16-32 0.0150 ± 0.0006 (n 3), p = 0.003``."""
        p = "not testable (n < 2)" if math.isnan(self.p) else f"p = {self.p:.2g}"
        return (f"{a} {_mean_sd(self.mean_a, self.sd_a, self.n_a)} vs {b} {_mean_sd(self.mean_b, self.sd_b, self.n_b)}"
                f", {p}")


def _mean_sd(mean: float, sd: float, n: int) -> str:
    return f"{mean:.4g}" + (f" ± {sd:.2g}" if n > 1 else "") + f" (n {n})"


def compare(a: Sequence[float], b: Sequence[float], alpha: float = SIGNIFICANCE) -> Comparison:
    """Welch's t-test of ``a`` against ``b``; ``lower`` names the side with the lower mean when p < ``alpha``.

    Identical values on both sides with no spread are a difference of exactly zero (``neither``); distinct
    values without any spread (a deterministic metric) are told apart exactly."""
    x, y = inference.finite(a), inference.finite(b)
    mean_x, mean_y = (float(v.mean()) if len(v) else math.nan for v in (x, y))
    sd_x, sd_y = (float(v.std(ddof=1)) if len(v) > 1 else math.nan for v in (x, y))
    p = inference.welch(x, y)
    lower = "neither"
    if not math.isnan(p) and p < alpha:
        lower = "a" if mean_x < mean_y else "b"
    return Comparison(mean_x, sd_x, len(x), mean_y, sd_y, len(y), p, lower)


def against_value(a: Sequence[float], value: float, alpha: float = SIGNIFICANCE) -> Comparison:
    """``a`` (seed values) against a fixed ``value`` (a deterministic baseline such as PCA): a one-sample t-test;
    a single value, or values without spread, are told apart exactly only when all lie on one side."""
    x = inference.finite(a)
    mean = float(x.mean()) if len(x) else math.nan
    sd = float(x.std(ddof=1)) if len(x) > 1 else math.nan
    p = math.nan
    if len(x) > 1:
        p = (1.0 if mean == value else 0.0) if sd == 0 else float(stats.ttest_1samp(x, value).pvalue)
    lower = "neither"
    if not math.isnan(p) and p < alpha:
        lower = "a" if mean < value else "b"
    return Comparison(mean, sd, len(x), float(value), 0.0, 1, p, lower)


def adjusted(comparisons: Sequence[Comparison], alpha: float = SIGNIFICANCE) -> list[Comparison]:
    """A family of comparisons with Holm-adjusted p-values (:func:`analysis.inference.holm`) and ``lower`` decided
    on them: a claim that rests on several comparisons is judged on the family, not on each alone."""
    ps = inference.holm([c.p for c in comparisons])
    out = []
    for c, p in zip(comparisons, ps, strict=True):
        lower = "neither" if math.isnan(p) or p >= alpha else "a" if c.mean_a < c.mean_b else "b"
        out.append(c._replace(p=p, lower=lower))
    return out


def last_third_gain(values: Sequence[float]) -> float:
    """How much the best of ``values`` (a val metric per epoch, lower is better) improved over the last third of
    the epochs, relative to the best before that third (0.01 = 1 %); NaN for a curve too short to have a last
    third, or one that diverged before it."""
    best = np.minimum.accumulate(np.asarray(values, dtype=float))
    before = len(best) - max(1, len(best) // 3)
    if before < 1 or not math.isfinite(best[before - 1]) or best[before - 1] <= 0:
        return math.nan
    return float((best[before - 1] - best[-1]) / best[before - 1])


def flattening(history: pd.DataFrame, trial_ids: Sequence[str], metric: str = "val_mse") -> pd.Series:
    """Each trial's :func:`last_third_gain` from a study's history table (one row per trial and epoch)."""
    wanted = history[history["trial_id"].astype(str).isin([str(t) for t in trial_ids])]
    gains = {str(t): last_third_gain(g.sort_values("epoch")[metric].astype(float).tolist())
             for t, g in wanted.groupby("trial_id")}
    return pd.Series({str(t): gains.get(str(t), math.nan) for t in trial_ids}, dtype=float)


def flat_sentence(gains: pd.Series, what: str) -> str:
    """E.g. ``flattened: 11 of 12 trials improved their val MSE by less than 2 % over their last third of
    epochs (median 0.4 %, largest 2.6 %)``."""
    known = gains.dropna()
    if known.empty:
        return f"flattening of the {what}: unknown (curves too short to have a last third)"
    flat = int((known < FLAT_GAIN).sum())
    return (f"flattened: {flat} of {len(known)} {what} improved their val MSE by less than {FLAT_GAIN:.0%} over "
            f"their last third of epochs (median {known.median():.1%}, largest {known.max():.1%})")


def unready(
    gains: Sequence[float], what: str, beaten: Sequence[bool] = (), baseline: str = "", models: str = "models"
) -> str:
    """Why the models a claim compares cannot carry a verdict yet ("" when they can): the ``gains``
    (:func:`last_third_gain`) of the ``what`` it rests on, not all below :data:`FLAT_GAIN` (an unknown gain counts
    as not flattened), or ``beaten`` (per compared one of ``models``: does it beat ``baseline``?) not all true."""
    values = np.asarray(list(gains), dtype=float)
    if not len(values):
        return f"no {what} finished"
    reasons = []
    flat = int(np.sum(values < FLAT_GAIN))
    if flat < len(values):
        known = values[np.isfinite(values)]
        spread = (f"; median gain {np.median(known):.1%}, largest {known.max():.1%}" if len(known)
                  else "; curves too short to tell")
        reasons.append(f"{flat} of {len(values)} {what} flattened (val MSE still improving by {FLAT_GAIN:.0%} or "
                       f"more over the last third of their epochs{spread})")
    if len(beaten) and not all(beaten):
        reasons.append(f"{sum(bool(b) for b in beaten)} of {len(beaten)} {models} beat {baseline}")
    return "; ".join(reasons)
