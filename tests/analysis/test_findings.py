"""Findings: sentences carry their numbers and say when a sample is too small to trust."""

from __future__ import annotations

import pandas as pd

from analysis import findings
from analysis.importance import Importance


def test_correlation_sentences_name_rho_the_holm_adjusted_p_and_n() -> None:
    table = pd.DataFrame(
        [("latent_dim", 0.12, 0.46, 0.92, 40, "none"), ("kernel_size", 0.81, 0.0001, 0.0003, 40, "strong"),
         ("lr", -0.35, 0.02, 0.04, 6, "weak"), ("batch_size", 0.45, 0.03, 0.06, 40, "moderate")],
        columns=["param", "rho", "p_value", "p_holm", "n", "strength"],
    )
    assert findings.correlations(table, "test_mse", "min") == [
        "latent dim vs test MSE: Spearman rho = 0.12 (Holm-adjusted p = 0.92 over 4 hyperparameters), n = 40: no "
        "monotone relation detected.",
        "kernel size vs test MSE: Spearman rho = 0.81 (Holm-adjusted p < 0.001 over 4 hyperparameters), n = 40: "
        "strong monotone relation, larger kernel size goes with worse test MSE.",
        "learning rate vs test MSE: Spearman rho = -0.35 (Holm-adjusted p = 0.04 over 4 hyperparameters), n = 6: "
        "weak monotone relation, larger learning rate goes with better test MSE; uncertain with only 6 trials.",
        # p = 0.03 alone, but not after the correction: no relation is said
        "batch size vs test MSE: Spearman rho = 0.45 (Holm-adjusted p = 0.06 over 4 hyperparameters), n = 40: no "
        "monotone relation detected (the estimate is moderate: larger batch size goes with worse test MSE).",
    ]
    psnr = findings.correlations(table.iloc[1:2], "test_psnr", "max", sampler="tpe")[0]
    assert "goes with better test PSNR (dB)" in psnr and "over 1 hyperparameter, adaptively sampled trials)" in psnr
    assert "adaptively" not in findings.correlations(table.iloc[1:2], "test_psnr", "max", sampler="random")[0]


def test_best_trial_against_the_trivial_baseline() -> None:
    ranked = pd.DataFrame([{"trial_id": "t3", "architecture": "32-48-64 k3 z128 skip", "val_mse": 0.0042,
                            "test_mse": 0.0045, "trivial_mse": 0.018, "skill": 0.75}])
    assert findings.best(ranked, "val_mse") == [
        "Best trial t3 (32-48-64 k3 z128 skip): val MSE 0.0042, test MSE 0.0045 against 0.018 for the trivial "
        "baseline (skill 0.750: 75% lower error)."
    ]
    with_interval = findings.best(ranked.assign(test_mse_ci95=0.0012), "val_mse")[0]
    assert "test MSE 0.0045 ± 0.0012 (95 % CI over the test images) against 0.018" in with_interval
    worse = ranked.assign(test_mse=0.02, skill=-0.111)
    assert findings.best(worse, "val_mse")[0].endswith("(skill -0.111): no better than the trivial baseline.")
    untested = ranked.assign(test_mse=float("nan"))
    assert findings.best(untested, "val_mse")[0].endswith("so its distance to the trivial baseline is unknown.")
    nothing = ["No finished trial reports a val MSE, so nothing is ranked."]
    assert findings.best(ranked.head(0), "val_mse") == nothing


def test_status_counts_running_trials_and_failure_reasons() -> None:
    counts = pd.DataFrame({"status": ["COMPLETE", "PRUNED", "FAILED", "RUNNING", "PENDING", "COMPLETE without val_mse"],
                           "n": [5, 0, 3, 2, 1, 1]})
    reasons = pd.DataFrame([{"status": "FAILED", "reason": "DivergedError: nan", "n": 2}])
    assert findings.status(counts, reasons, "interrupted") == [
        "11 trials: 5 complete, 3 failed, 3 still running or pending.",
        "1 complete trial reports no val MSE: counted, not ranked.",
        "The study is interrupted: this report covers the trials that had ended.",
        'Most common reason for failed trials: "DivergedError: nan" (2 of 3).',
    ]


def group_table(
    means: list[float], ns: list[int], labels: list[str], p: list[float], pruned: list[int]
) -> pd.DataFrame:
    return pd.DataFrame({"kernel_size": [3, 5, 7][: len(means)], "val_mse mean": means, "val_mse std": 0.001,
                         "n": ns, "val_mse best": means, "pruned": pruned, "p_vs_best": p, "vs_best": labels})


def test_group_sentences_say_best_on_average_only_with_a_test() -> None:
    nan = float("nan")
    every = group_table([0.01, 0.02, 0.03], [4, 3, 3], ["best", "worse", "worse"], [nan, 0.01, 0.002], [0, 0, 0])
    assert findings.groups({"kernel_size": every}, "val_mse", "min") == [
        "kernel size: 3 is best on average (mean val MSE 0.01, n = 4): every other value is worse (5 (0.02, n = 3, "
        "p = 0.01), 7 (0.03, n = 3, p = 0.002); Welch's t-test against 3, Holm-adjusted over 2 comparisons)."
    ]
    mixed = group_table([0.01, 0.012, 0.03], [4, 3, 1], ["best", "no difference detected", ""], [nan, 0.4, nan],
                        [2, 0, 1])
    sentences = findings.groups({"kernel_size": mixed}, "val_mse", "min", sampler="tpe")
    assert sentences[0].startswith("The group comparisons and correlations below rest on adaptively sampled "
                                   "trials (tpe chose")
    assert sentences[1] == (
        "kernel size: 3 has the best mean val MSE (0.01, n = 4); no difference detected: 5 (0.012, n = 3, p = "
        "0.4); untested (fewer than 2 finished trials): 7 (0.03, n = 1) (Welch's t-test against 3, Holm-adjusted "
        "over 1 comparison); pruned trials are not in these means (2 of 3, 1 of 7): a scheduler stops the trials "
        "that look worse early, so a value with many pruned trials looks better in its mean than its trials were."
    )
    assert "best on average" not in sentences[1]
    none = group_table([0.01, 0.02], [1, 1], ["", ""], [nan, nan], [0, 0])
    assert findings.groups({"kernel_size": none}, "val_mse", "min", sampler="random") == [
        "kernel size: 3 has the best mean val MSE (0.01, n = 1); no two values have 2 finished trials each, so "
        "nothing is tested."
    ]


def test_importance_sentences_flag_small_samples() -> None:
    scores = pd.DataFrame({"param": ["lr", "filters"], "fanova": [0.7, 0.3], "ped_anova": [0.4, 0.6]})
    sentence = findings.importance(Importance(scores), "val_mse", 12)[0]
    assert sentence == (
        "Hyperparameters that matter most for val MSE (fANOVA, 12 trials): learning rate 0.70, filters 0.30; "
        "PED-ANOVA ranks filters first (0.60), so the order is not settled. With fewer than 20 trials these "
        "estimates are uncertain."
    )
    empty = Importance(scores.head(0), "importance cannot be estimated from 2 finished trials (needs at least 4)")
    assert findings.importance(empty, "val_mse", 2) == [
        "Importance cannot be estimated from 2 finished trials (needs at least 4)."
    ]


def test_pareto_and_comparison_sentences() -> None:
    front = pd.DataFrame({"trial_id": ["a", "b"], "architecture": ["8-16 k3 z16", "32-48-64 k3 z128"],
                          "params": [12000, 250000], "val_mse": [0.02, 0.01]})
    assert findings.pareto(front, "val_mse", "params", 30) == [
        "Best trade-offs between val MSE and size (Pareto set, 2 of 30 trials): 8-16 k3 z16 (12,000 parameters, "
        "val MSE 0.02); 32-48-64 k3 z128 (250,000 parameters, val MSE 0.01)."
    ]
    table = pd.DataFrame({"study": ["rgb", "yuv", "lab"], "best val_mse": [0.02, 0.01, None], "complete": [12, 30, 0]})
    assert findings.comparison(table, "val_mse", "min") == [
        "Best val MSE by study: yuv 0.01 (best of 30 finished trials), rgb 0.02 (best of 12 finished trials) (best "
        "first; compare skill when the tasks differ). Each is one run, the best of its study's N: the best of more "
        "trials is better by selection alone, so unequal N favour the larger study, and these values are not "
        "tested against each other."
    ]
    assert findings.comparison(table.assign(complete=[4, 30, 0]), "val_mse", "min")[0].endswith(
        "A study with fewer than 10 finished trials makes this ranking uncertain."
    )
