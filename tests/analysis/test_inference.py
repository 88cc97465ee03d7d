"""The tests behind the report's comparisons, on values whose answers are known by construction or from scipy."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from analysis import inference

T975_3 = 3.18244630528  # Student t, 0.975 quantile, 3 degrees of freedom (from tables)


def test_welch_is_scipys_welch_test_and_tells_deterministic_values_apart() -> None:
    a, b = [0.010, 0.012, 0.011, 0.013], [0.014, 0.015, 0.013]
    assert inference.welch(a, b) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-12)
    assert inference.welch([0.01, 0.01], [0.02, 0.02]) == 0.0  # no spread, different values: apart exactly
    assert inference.welch([0.01, 0.01], [0.01, 0.01]) == 1.0
    assert math.isnan(inference.welch([0.01], [0.02, 0.03]))  # one value: no spread to judge the gap against
    assert inference.welch([0.01, math.nan, 0.012], [0.03, 0.031]) == pytest.approx(
        stats.ttest_ind([0.01, 0.012], [0.03, 0.031], equal_var=False).pvalue)  # a diverged seed is not a value


def test_holm_known_answer() -> None:
    # Sorted 0.005, 0.01, 0.03, 0.04 are multiplied by 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> non-decreasing 0.06.
    assert inference.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    nan_first = inference.holm([math.nan, 0.2, 0.6])  # NaN is not in the family: m = 2
    assert math.isnan(nan_first[0]) and nan_first[1:] == pytest.approx([0.4, 0.6])
    assert inference.holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert inference.holm([]) == [] and inference.holm([0.03]) == [0.03]


def test_against_best_tests_each_group_against_the_best_mean_with_holm() -> None:
    groups = [[1.0, 2.0, 3.0], [1.5, 2.5, 3.5], [10.0, 11.0, 12.0], [5.0]]
    labels, p = inference.against_best(groups, "min")
    raw = [stats.ttest_ind(groups[i], groups[0], equal_var=False).pvalue for i in (1, 2)]
    assert labels == ["best", "no difference detected", "worse", ""]
    assert p[1:3] == pytest.approx(inference.holm(raw)) and math.isnan(p[0]) and math.isnan(p[3])
    labels, _ = inference.against_best(groups, "max")  # higher is better: the third group is the best
    assert labels == ["worse", "worse", "best", ""]
    labels, p = inference.against_best([[1.0, 2.0], [3.0]], "min")  # one group with 2 values: nothing to compare
    assert labels == ["", ""] and all(math.isnan(v) for v in p)
    assert inference.against_best([[1.0, 2.0], [1.0, 2.0]], "min")[0] == ["best", "no difference detected"]  # tie


def test_slope_with_one_intercept_per_group_known_answer() -> None:
    # y = 2x + a group's own level + residuals c * (1, -2, 1), which are orthogonal to x and to the group's mean:
    # slope exactly 2; RSS = 2 groups x 6 c^2, df = 6 - 3 = 3, s^2 = 4 c^2, within-group Sxx = 4, SE = c.
    x = [1.0, 2.0, 3.0] * 2
    c = 0.1
    residuals = [c, -2 * c, c] * 2
    levels = [0.0] * 3 + [10.0] * 3
    y = [2 * v + level + e for v, level, e in zip(x, levels, residuals, strict=True)]
    fit = inference.slope(x, y, ["a"] * 3 + ["b"] * 3)
    assert fit.slope == pytest.approx(2.0) and (fit.n, fit.groups, fit.df) == (6, 2, 3)
    assert (fit.low, fit.high) == pytest.approx((2 - T975_3 * c, 2 + T975_3 * c), rel=1e-9)
    assert fit.excludes_zero()
    one = inference.slope([1, 2, 3, 4, 5], [0.3, 0.1, 0.5, 0.2, 0.4], ["g"] * 5, confidence=0.9)
    reference = stats.linregress([1, 2, 3, 4, 5], [0.3, 0.1, 0.5, 0.2, 0.4])
    half = stats.t.ppf(0.95, 3) * reference.stderr
    assert (one.slope, one.low, one.high) == pytest.approx((reference.slope, reference.slope - half,
                                                            reference.slope + half))
    assert not one.excludes_zero()
    assert math.isnan(inference.slope([1, 2], [1, 2], ["a", "b"]).slope)  # no residual degrees of freedom
