"""Reconstruction judged against PCA at the same code size: the leaderboard's columns and the findings' words,
read back from a study folder like a sweep writes it (pca_matched goes through the CSV as text)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis import findings, tables
from analysis.build import study_report
from results import load_study, study_paths
from tests.analysis.built_studies import StudyFactory, trial

# (val_mse, skip, pca_mse): the CAE's test MSE is 1.05 * val_mse (studies.trial), so skill vs PCA is
# 0.475, -0.4, -0.3125 and 0.37: one of the two compression-matched trials beats PCA, one of the two skip ones.
ROWS = [(0.003, False, 0.006), (0.004, True, 0.003), (0.005, False, 0.004), (0.006, True, 0.01)]


@pytest.fixture
def study_root(make_study: StudyFactory) -> Path:
    rows = []
    for n, (val, skip, pca) in enumerate(ROWS):
        test_mse = round(val * 1.05, 6)
        rows.append(
            trial(n, val_mse=val, skip=skip, test_mse=test_mse, pca_k=64, pca_mse=pca, pca_psnr=25.0, pca_ssim=0.8,
                  skill_pca=round(1 - test_mse / pca, 6), pca_matched=not skip)
        )
    return make_study("pca", rows)


def test_the_leaderboard_shows_pca_and_says_which_comparisons_are_compression_matched(study_root: Path) -> None:
    study = load_study(study_paths("pca", study_root))
    report = study_report(study, "val_mse", top=10)
    board = report.leaderboard
    assert list(board.columns) == [c for c in tables.LEADERBOARD if c in board.columns]
    assert {"pca_mse", "skill_pca", "pca_comparison"} <= set(board.columns)
    assert list(board["pca_mse"]) == [pca for _, _, pca in ROWS]
    assert list(board["skill_pca"]) == [0.475, -0.4, -0.3125, 0.37]
    assert list(board["pca_comparison"]) == [tables.MATCHED, tables.NOT_MATCHED, tables.MATCHED, tables.NOT_MATCHED]
    assert tables.NOT_MATCHED == "not compression-matched (skip connections bypass the bottleneck)"
    sentences = report.findings
    assert (
        "Best trial t00 (32-48-64 k3 z64): val MSE 0.003, test MSE 0.00315 against 0.006 for PCA with 64 components, "
        "the best linear code of the same size (skill vs PCA 0.475: 48% lower error)."
    ) in sentences
    assert any(s.startswith("Against the trivial baseline it scores skill 0.84") and "2x down/up-sampling" in s
               for s in sentences)
    assert (
        "1 of 2 compression-matched trials beat PCA with as many components as their latent units (skill vs PCA > 0); "
        "1 of 2 trials with skip connections do, but they bypass the bottleneck, so their comparison is not "
        "compression-matched."
    ) in sentences


def test_a_best_trial_with_skip_connections_is_not_compression_matched() -> None:
    ranked = pd.DataFrame([{"trial_id": "t1", "architecture": "32-48-64 k3 z64 skip", "val_mse": 0.004,
                            "test_mse": 0.0042, "trivial_mse": 0.02, "skill": 0.79, "pca_k": 64, "pca_mse": 0.003,
                            "skill_pca": -0.4, "pca_matched": False}])
    first = findings.best(ranked, "val_mse")[0]
    assert first == (
        "Best trial t1 (32-48-64 k3 z64 skip): val MSE 0.004, test MSE 0.0042 against 0.003 for PCA with 64 "
        "components, the best linear code of the same size (skill vs PCA -0.400): no better than PCA; not "
        "compression-matched: its skip connections bypass the bottleneck, so its code is larger."
    )


def test_without_a_pca_baseline_the_trivial_one_judges() -> None:
    """Colorization has no PCA baseline (NaN): the sentence is the trivial baseline's, no PCA column is worded."""
    ranked = pd.DataFrame([{"trial_id": "t3", "architecture": "32-48-64 k3 z128", "val_mse": 0.0042,
                            "test_mse": 0.0045, "trivial_mse": 0.018, "skill": 0.75, "pca_k": float("nan"),
                            "pca_mse": float("nan"), "skill_pca": float("nan"), "pca_matched": True}])
    assert findings.best(ranked, "val_mse") == [
        "Best trial t3 (32-48-64 k3 z128): val MSE 0.0042, test MSE 0.0045 against 0.018 for the trivial "
        "baseline (skill 0.750: 75% lower error)."
    ]
    assert findings.beat_baseline(ranked) == ["1 of 1 finished trial beat the trivial baseline (skill > 0)."]
    assert tables.pca_comparison(float("nan"), True) == ""


@pytest.mark.parametrize(
    ("cell", "flag"), [(True, True), ("True", True), ("false", False), (0.0, False), (None, None), (float("nan"), None)]
)
def test_pca_matched_is_read_back_as_a_flag(cell: object, flag: bool | None) -> None:
    trials = pd.DataFrame({"trial_id": ["a"], "status": ["COMPLETE"], "architecture": ["8 k3 z4"],
                           "pca_matched": pd.Series([cell], dtype=object)})
    assert tables.prepare_trials(trials)["pca_matched"].iloc[0] is flag


def test_a_leaderboard_without_pca_numbers_shows_no_pca_columns(study_root: Path) -> None:
    """Shown, not stored: a colourisation board drops its empty PCA columns and says which baseline judges;
    a reconstruction board keeps them (and leaderboard.csv always keeps every column)."""
    from analysis.document import BASELINES, TRIVIAL_BASELINE, leaderboard_cells

    board = study_report(load_study(study_paths("pca", study_root)), "val_mse", top=10).leaderboard
    assert {"pca_mse", "skill_pca", "pca_comparison"} <= set(leaderboard_cells(board).columns)
    colour = board.assign(pca_mse=float("nan"), skill_pca=float("nan"), pca_comparison="")
    shown = leaderboard_cells(colour)
    assert not {"pca_mse", "skill_pca", "pca_comparison"} & set(shown.columns)
    assert list(shown.columns) == [c for c in board.columns if c not in ("pca_mse", "skill_pca", "pca_comparison")
                                   and c in shown.columns]
    assert "PCA MSE" in BASELINES and "PCA MSE" not in TRIVIAL_BASELINE
