"""The statistics behind the seed reproductions' verdicts, on values whose answer is known by construction."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmarks import evidence


def test_compare_tells_a_gap_beyond_the_seeds_spread_from_one_inside_it() -> None:
    apart = evidence.compare([0.010, 0.011, 0.012], [0.020, 0.021, 0.022])
    assert apart.lower == "a" and apart.p < 0.001 and apart.ratio == pytest.approx(0.021 / 0.011)
    assert evidence.compare([0.020, 0.021, 0.022], [0.010, 0.011, 0.012]).lower == "b"
    inside = evidence.compare([0.010, 0.014, 0.012], [0.011, 0.015, 0.013])
    assert inside.lower == "neither" and inside.p > 0.3
    assert "0.012 ± 0.002 (n 3) vs" in inside.describe("x", "y")


def test_compare_without_spread_or_with_one_value() -> None:
    assert evidence.compare([0.01, 0.01], [0.02, 0.02]).lower == "a"  # deterministic values: told apart exactly
    assert evidence.compare([0.01, 0.01], [0.01, 0.01]).lower == "neither"
    single = evidence.compare([0.01], [0.02, 0.03])
    assert single.lower == "neither" and math.isnan(single.p) and "not testable" in single.describe("a", "b")
    assert evidence.compare([0.01, math.nan, 0.012], [0.03, 0.031]).n_a == 2  # a diverged seed is not a value


def test_against_a_fixed_baseline() -> None:
    assert evidence.against_value([0.010, 0.011, 0.012], 0.02).lower == "a"
    assert evidence.against_value([0.030, 0.031, 0.032], 0.02).lower == "b"
    assert evidence.against_value([0.010, 0.030, 0.020], 0.021).lower == "neither"
    assert evidence.against_value([0.010], 0.02).lower == "neither"  # one seed: no noise to judge against


def test_last_third_gain_and_the_flattening_sentence() -> None:
    assert evidence.last_third_gain([0.5, 0.2, 0.11, 0.11, 0.1, 0.1]) == pytest.approx(1 / 11)
    assert evidence.last_third_gain([0.5, 0.2, 0.12, 0.13, 0.12, 0.12]) == pytest.approx(0.0)
    assert math.isnan(evidence.last_third_gain([0.5]))
    history = pd.DataFrame({"trial_id": ["a"] * 6 + ["b"] * 6, "epoch": list(range(1, 7)) * 2,
                            "val_mse": [0.5, 0.2, 0.11, 0.11, 0.1, 0.1, 0.4, 0.2, 0.1, 0.1, 0.1, 0.1]})
    gains = evidence.flattening(history.sample(frac=1.0, random_state=0), ["a", "b"])  # any row order
    assert gains.to_dict() == pytest.approx({"a": 1 / 11, "b": 0.0})
    sentence = evidence.flat_sentence(gains, "trials")
    assert sentence.startswith("flattened: 1 of 2 trials") and "largest 9.1%" in sentence


def test_a_family_of_comparisons_is_judged_after_holms_correction() -> None:
    near = evidence.compare([0.010, 0.012, 0.011, 0.013], [0.013, 0.014, 0.0135, 0.015])  # p = 0.026 alone
    far = evidence.compare([0.010, 0.011, 0.012], [0.020, 0.021, 0.022])
    assert near.lower == "a" and 0.02 < near.p < 0.03
    family = evidence.adjusted([far, near])  # Holm: the smaller p x 2, the larger x 1 (not below the first)
    assert family[0].p == pytest.approx(2 * far.p) and family[0].lower == "a"
    assert family[1].p == pytest.approx(near.p) and family[1].lower == "a"
    twice = evidence.adjusted([near, near])  # two such comparisons: 0.026 x 2 is past 5 % for both
    assert [c.p for c in twice] == pytest.approx([2 * near.p] * 2) and {c.lower for c in twice} == {"neither"}
    assert twice[0].mean_a == near.mean_a and twice[0].n_b == near.n_b  # the numbers stay
    untestable = evidence.adjusted([evidence.compare([0.01], [0.02, 0.03])])[0]
    assert math.isnan(untestable.p) and untestable.lower == "neither"


def test_a_claim_waits_for_models_that_flattened_and_beat_their_baselines() -> None:
    assert evidence.unready([0.01, 0.0], "runs", [True, True], "PCA") == ""
    assert evidence.unready([0.01, 0.05, 0.03], "runs") == (
        "1 of 3 runs flattened (val MSE still improving by 2% or more over the last third of their epochs; median "
        "gain 3.0%, largest 5.0%)"
    )
    assert evidence.unready([math.nan], "runs") == (
        "0 of 1 runs flattened (val MSE still improving by 2% or more over the last third of their epochs; curves "
        "too short to tell)"
    )
    assert evidence.unready([0.0, 0.0], "runs", [True, False], "PCA", "lists") == "1 of 2 lists beat PCA"
    assert evidence.unready([], "fresh runs") == "no fresh runs finished"
