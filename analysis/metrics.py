"""Which trial-table columns are metrics, which way is better for each, and how they read in a report.

This is the one place that knows that an MSE is better low and an SSIM better high; every table, finding and
plot asks :func:`mode` instead of guessing.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cae.errors import UsageError
from results import TRIAL_COLUMNS

# Trial-table columns that describe a trial rather than measure it: never a --metric.
NOT_METRICS = frozenset(
    {"trial_id", "number", "status", "repeat_of", "architecture", "policy", "pca_k", "pca_matched", "node", "error",
     "started_at", "finished_at"}
)
# An interval's half-width (``test_mse_ci95``) says how sure a score is; it is not a score to rank by.
METRICS = tuple(c for c in TRIAL_COLUMNS if c not in NOT_METRICS and not c.endswith("_ci95"))
# Scores measured on the held-out test split (skill and skill_pca are ratios of test scores): ranking by one
# selects on the test split.
TEST_SCORES = ("native_mse", "skill", "skill_pca")

# Higher is better for these name parts; everything else (mse, loss, params, seconds, epochs) is better low.
# Colourfulness counts as better high: the failure it measures is the washed-out colouriser MSE rewards (the
# truth's colourfulness, beside it, says where "more" stops being better).
_HIGHER_IS_BETTER = ("psnr", "ssim", "skill", "images_per_second", "colorfulness")

# How a column reads in a table header or on a plot axis (units included); other columns read as they are.
LABELS = {
    "trial_id": "trial",
    "val_mse": "val MSE",
    "val_loss": "val loss",
    "val_native_mse": "val native MSE",
    "val_psnr": "val PSNR (dB)",
    "val_ssim": "val SSIM",
    "val_colorfulness": "val colourfulness",
    "test_mse": "test MSE",
    "test_psnr": "test PSNR (dB)",
    "test_ssim": "test SSIM",
    "test_colorfulness": "test colourfulness",
    "truth_colorfulness": "truth colourfulness",
    "native_mse": "test native MSE",
    "trivial_mse": "trivial MSE",
    "trivial_psnr": "trivial PSNR (dB)",
    "trivial_ssim": "trivial SSIM",
    "trivial_native_mse": "trivial native MSE",
    "skill": "skill",
    "pca_k": "PCA components",
    "pca_mse": "PCA MSE",
    "pca_psnr": "PCA PSNR (dB)",
    "pca_ssim": "PCA SSIM",
    "skill_pca": "skill vs PCA",
    "pca_comparison": "vs PCA",
    "params": "parameters",
    "epochs": "epochs",
    "best_epoch": "best epoch",
    "train_seconds": "train time (s)",
    "images_per_second": "images/s",
    "lr": "learning rate",
    "batch_size": "batch size",
    "kernel_size": "kernel size",
    "latent_dim": "latent dim",
    "convs_per_level": "convs per level",
    "batch_norm": "batch norm",
    "cumulative_seconds": "cumulative train time (s)",
    "test_mse_ci95": "test MSE 95 % CI ± (test images)",
    "skill_ci95": "skill 95 % CI ± (test images)",
    "vs_best": "vs best",
    "p_vs_best": "p vs best",
    "n_seeds": "fresh seeds",
    "pixel_range": "pixel range",
}


def study_mode(meta: Mapping[str, Any], metric: str) -> str:
    """The direction of ``metric`` in a study: the one the study was run with when it is one of its objectives
    (given explicitly, ``val_mse:min``), else the metric's known direction (:func:`mode`)."""
    for objective in meta.get("objectives") or ():
        chosen = isinstance(objective, Mapping) and objective.get("metric") == metric
        if chosen and objective.get("mode") in ("min", "max"):
            return str(objective["mode"])
    return mode(metric)


def mode(metric: str) -> str:
    """``"max"`` when a higher value of ``metric`` is better, ``"min"`` otherwise."""
    return "max" if any(part in metric for part in _HIGHER_IS_BETTER) else "min"


def is_test_metric(metric: str) -> bool:
    """True for a score of the held-out test split (``test_*``, native_mse, skill, skill_pca)."""
    return metric.startswith("test_") or metric in TEST_SCORES


def label(column: str) -> str:
    """The readable name of a column, e.g. ``"test_psnr"`` -> ``"test PSNR (dB)"``, ``"test_mse_selected"`` ->
    ``"test MSE, selected run"``."""
    if column.endswith("_selected") and column not in LABELS:
        return f"{label(column.removesuffix('_selected'))}, selected run"
    return LABELS.get(column, column)


def check_metric(metric: str) -> str:
    """Return ``metric`` if it is a metric column of the trial table, else raise :class:`UsageError`."""
    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    return metric


# Columns that count things: shown as integers with thousands separators.
_COUNTS = ("params", "epochs", "best_epoch", "batch_size", "n", "rank", "number", "latent_dim", "trials", "pca_k",
           "n_seeds", "pruned")


def fmt(column: str, value: Any) -> str:
    """A cell as text, by the column's name: PSNR in 0.01 dB, SSIM/skill/rho to 3 decimals, counts as integers,
    seconds and colourfulness to 1 decimal, MSE-like values with 4 significant digits (``"val_mse mean"`` formats
    like ``"val_mse"``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return "" if value is None or value is pd.NA else str(value)
    number = float(value)
    if math.isnan(number):
        return ""
    whole = number.is_integer() and abs(number) < 1e15
    if column in _COUNTS:
        return f"{int(number):,}" if whole else f"{number:.1f}"
    if "psnr" in column:
        return f"{number:.2f}"
    if any(part in column for part in ("ssim", "skill", "rho", "anova")):
        return f"{number:.3f}"
    if "seconds" in column or "colorfulness" in column:
        return f"{number:.1f}"
    if column in ("lr", "p_value", "p_holm", "p_vs_best"):
        return f"{number:.2g}"
    return str(int(number)) if whole else f"{number:.4g}"


def fmt_ci(column: str, mean: Any, half_width: Any) -> str:
    """``"0.01230 ± 0.00041"``: a mean and the half-width of its confidence interval ("" when either is missing).

    The half-width is shown to 2 significant digits and the mean to the same decimal place: more digits than
    the interval supports would only be noise. A zero half-width (every seed scored the same) shows the mean
    as :func:`fmt` would.
    """
    if not all(isinstance(v, numbers.Real) and math.isfinite(float(v)) for v in (mean, half_width)):
        return ""
    mean, half_width = float(mean), float(half_width)
    if half_width <= 0:
        return f"{fmt(column, mean)} ± 0"
    decimals = max(0, 1 - math.floor(math.log10(half_width)))
    return f"{mean:.{decimals}f} ± {half_width:.{decimals}f}"
