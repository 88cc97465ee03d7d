"""Seed repeats (``python -m search confirm``): pooled into mean, std and 95 % CI, never ranked on their own.

The numbers come from :func:`tests.analysis.built_studies.confirmed_rows`, whose test MSEs are chosen so that every
mean, standard deviation and interval can be worked out by hand (written here as literals, not recomputed).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import build, document, findings, tables
from analysis.images import best_model_grid
from analysis.metrics import fmt_ci
from results import COMPLETE, load_study, study_paths
from tests.analysis.built_studies import CONFIRM, StudyFactory, confirmed_rows, run_report, save_tiny_model, trial
from tests.conftest import read_study_table

# Student t quantiles: t(0.975, 2) in closed form (with 2 degrees of freedom t_p = (2p - 1) / sqrt(2p(1 - p))),
# t(0.975, 3) = 3.18244630528 from tables of the t distribution.
T975_2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)
T975_3 = 3.18244630528
TIED, WORSE = "not distinguishable from the best", "worse than the best"


@pytest.fixture
def confirmed(make_study: StudyFactory) -> Path:
    """A results root holding the ``confirmed`` study: split seed 7, top 4 re-trained with 3 seeds each."""
    return make_study("confirmed", confirmed_rows(), split_seed=7, confirm=CONFIRM)


def report_of(root: Path, metric: str = "val_mse") -> build.StudyReport:
    return build.study_report(load_study(study_paths("confirmed", root)), metric, 10)


def test_mean_ci_known_answer() -> None:
    mean, std, half = tables.mean_ci([1.0, 2.0, 3.0])
    assert (mean, std) == (2.0, 1.0)
    assert half == pytest.approx(T975_2 / math.sqrt(3), rel=1e-12) and half == pytest.approx(2.4841, abs=5e-5)
    assert tables.mean_ci([4.0, 4.0]) == (4.0, 0.0, 0.0)
    assert all(math.isnan(v) for v in tables.mean_ci([0.5]))  # one seed: no spread, no interval


def test_seed_statistics_of_the_confirmed_study(confirmed: Path) -> None:
    seeds = report_of(confirmed).seeds
    assert list(seeds.columns) == [
        "rank", "trial_id", "architecture", "seeds", "n_seeds", "test_mse_mean", "test_mse_std", "test_mse_ci95",
        "vs_best",
    ]
    assert seeds[["rank", "trial_id", "architecture", "seeds", "n_seeds", "vs_best"]].to_dict("list") == {
        "rank": [1, 2, 3, 4],
        "trial_id": ["t00", "t01", "t02", "t03"],
        "architecture": ["32-48-64 k3 z128", "16-32 k3 z128", "8-16 k3 z64", "8-16 k3 z16"],
        "seeds": ["0, 101, 102, 103", "0, 101, 102, 103", "0, 101, 102", "0"],
        "n_seeds": [4, 4, 3, 1],  # t02's third repeat failed; t03's repeats are running or failed
        "vs_best": [TIED, "best", WORSE, ""],
    }
    # t00: 0.011..0.014, std sqrt(5e-6 / 3); t01: 0.010, 0.010, 0.011, 0.012; t02: 0.020 +- 0.001 ("1, 2, 3").
    assert seeds["test_mse_mean"].tolist()[:3] == pytest.approx([0.0125, 0.01075, 0.020], rel=1e-12)
    assert seeds["test_mse_std"].tolist()[:3] == pytest.approx([math.sqrt(5e-6 / 3), math.sqrt(2.75e-6 / 3), 0.001])
    assert seeds["test_mse_ci95"].tolist()[:3] == pytest.approx(
        [T975_3 * math.sqrt(5e-6 / 3) / 2, T975_3 * math.sqrt(2.75e-6 / 3) / 2, 0.001 * T975_2 / math.sqrt(3)],
        rel=1e-10,
    )
    assert seeds.loc[3, ["test_mse_mean", "test_mse_std", "test_mse_ci95"]].isna().all()


def test_leaderboard_ranks_search_trials_and_carries_the_seed_statistics(confirmed: Path) -> None:
    report = report_of(confirmed)
    board = report.leaderboard
    assert list(board.columns) == list(tables.LEADERBOARD)
    assert board["trial_id"].tolist() == ["t00", "t01", "t02", "t03", "t04", "t05"]  # no repeat is ranked
    assert board["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert board["test_mse"].tolist() == [0.011, 0.010, 0.020, 0.021, 0.022, 0.023]  # the original run's own
    assert board["n_seeds"].tolist() == [4, 4, 3, 1, 1, 1]
    assert board["vs_best"].tolist() == [TIED, "best", WORSE, "", "", ""]
    stats = ["test_mse_mean", "test_mse_std", "test_mse_ci95"]
    pd.testing.assert_frame_equal(board.loc[:2, stats], report.seeds.loc[:2, stats])
    assert board.loc[3:, stats].isna().all().all()
    # Repeats stay out of every search table: status counts, the history, the groups and the trial count.
    assert report.status.set_index("status")["n"].to_dict() == {
        "COMPLETE": 6, "PRUNED": 0, "FAILED": 0, "RUNNING": 0, "PENDING": 0
    }
    assert len(report.trials) == len(report.done) == 6 and len(report.repeats) == 12
    assert report.history["trial_id"].tolist() == [f"t0{i}" for i in range(6)]
    assert report.groups["filters"]["n"].sum() == 6


def test_a_test_metric_is_compared_on_itself(confirmed: Path) -> None:
    assert [tables.seed_metric(m) for m in ("val_mse", "val_psnr", "params", "test_psnr", "skill")] == [
        "test_mse", "test_mse", "test_mse", "test_psnr", "skill"
    ]
    report = report_of(confirmed, "test_psnr")
    board = report.leaderboard
    at = list(board.columns).index("test_psnr")
    assert list(board.columns)[at: at + 4] == ["test_psnr", "test_psnr_mean", "test_psnr_std", "test_psnr_ci95"]
    raw = read_study_table(confirmed / "confirmed" / "trials.csv")
    psnr = raw[(raw["status"] == COMPLETE) & (raw["trial_id"].isin(["t01"]) | (raw["repeat_of"] == "t01"))]
    row = report.seeds.set_index("trial_id").loc["t01"]
    values = psnr["test_psnr"].to_numpy()
    assert row["test_psnr_mean"] == pytest.approx(values.mean())
    assert row["test_psnr_ci95"] == pytest.approx(T975_3 * values.std(ddof=1) / 2, rel=1e-10)
    assert row["vs_best"] == "best"  # the highest mean PSNR: higher is better


def test_vs_best_follows_the_direction_and_counts_touching_intervals_as_overlapping() -> None:
    means, halves = pd.Series([1.0, 2.0, 3.0, 9.0]), pd.Series([0.5, 0.5, 0.1, float("nan")])
    assert tables.vs_best(means, halves, "min") == ["best", TIED, WORSE, ""]  # |2 - 1| = 0.5 + 0.5 touches
    assert tables.vs_best(means, halves, "max") == [WORSE, WORSE, "best", ""]
    assert tables.vs_best(means, halves * np.nan, "min") == ["", "", "", ""]


def test_seed_findings_say_n_the_interval_and_what_is_not_distinguishable(confirmed: Path) -> None:
    report = report_of(confirmed)
    assert findings.seeds(report.seeds, report.repeats, "test_mse", CONFIRM) == [
        "Seed repeats (confirm: top 4, 3 new seeds each): 12 runs, 8 complete, 2 failed, 2 running.",
        "Over training seeds, same data split: 32-48-64 k3 z128 (t00): test MSE 0.0125 ± 0.0021 (95 % CI, n = 4 "
        "seeds); 16-32 k3 z128 (t01): test MSE 0.0107 ± 0.0015 (95 % CI, n = 4 seeds); 8-16 k3 z64 (t02): test "
        "MSE 0.0200 ± 0.0025 (95 % CI, n = 3 seeds).",
        "t03: no repeat finished with test scores, so its numbers rest on one seed.",
        "32-48-64 k3 z128 (t00) is not distinguishable from the best over seeds, 16-32 k3 z128 (t01): their 95 % "
        "intervals of test MSE overlap, so these seeds do not tell them apart.",
        "The search ranked 32-48-64 k3 z128 (t00) first among these, but over seeds 16-32 k3 z128 (t01) has the "
        "better mean test MSE: a single seed's ranking did not hold.",
    ]
    assert report.findings.index(findings.seeds(report.seeds, report.repeats, "test_mse", CONFIRM)[0]) == 2
    apart = report.seeds.iloc[1:3]  # t01 and t02 only: their intervals are apart
    assert findings.seeds(apart, report.repeats, "test_mse", None)[-1] == (
        "The best over seeds, 16-32 k3 z128 (t01), is distinguishable from the other 1 confirmed configuration: "
        "no 95 % interval of test MSE overlaps its own."
    )
    assert findings.seeds(report.seeds.head(0), report.repeats.head(0), "test_mse", CONFIRM) == [
        "Seed repeats were asked for (confirm: top 4, 3 new seeds each), but none has been recorded yet."
    ]
    assert findings.seeds(report.seeds.head(0), report.repeats.head(0), "test_mse", None) == []


def test_intervals_read_to_the_precision_they_support() -> None:
    assert [fmt_ci("test_mse", 0.012345, 0.00041), fmt_ci("test_psnr", 27.3456, 0.35), fmt_ci("x", 2.0, 2.4841)] == [
        "0.01235 ± 0.00041", "27.35 ± 0.35", "2.0 ± 2.5"
    ]
    assert fmt_ci("test_mse", 0.01, 0.0) == "0.01 ± 0" and fmt_ci("test_mse", float("nan"), 0.1) == ""


def test_the_seed_settings_are_described() -> None:
    assert document.seed_settings({"seed": 3, "split_seed": 7, "confirm": CONFIRM}) == [
        "training seed: 3", "split seed: 7", "seed repeats: top 4, 3 new training seeds each"
    ]
    assert document.seed_settings({"seed": 3}) == [
        "training seed: 3", "split seed: 3 (the training seed; the study predates split_seed)"
    ]


def test_the_report_shows_the_seeds_in_every_format(confirmed: Path, tmp_path: Path) -> None:
    ran = run_report(["--study", "confirmed", "--root", str(confirmed), "--out", str(tmp_path), "--no-images"],
                     tmp_path)
    assert ran.code == 0, ran.err
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert board["trial_id"].tolist() == ["t00", "t01", "t02", "t03", "t04", "t05"]
    assert board["n_seeds"].tolist() == [4, 4, 3, 1, 1, 1]
    assert board["test_mse_ci95"].tolist()[:3] == pytest.approx([0.00205426, 0.00152348, 0.00248414], rel=1e-6)
    assert board["vs_best"].fillna("").tolist() == [TIED, "best", WORSE, "", "", ""]
    seeds = "training seed: 0; split seed: 7; seed repeats: top 4, 3 new training seeds each"
    markdown = (tmp_path / "report.md").read_text()
    assert seeds in markdown and "## Seed repeats" in markdown
    assert "| test MSE over seeds (95 % CI) | vs best |" in markdown
    assert "| 0.011 | 0.0125 ± 0.0021 (n=4) | not distinguishable from the best | 25.61 |" in markdown
    assert "| 3 | t02 | 8-16 k3 z64 | 0, 101, 102 | 0.0200 ± 0.0025 (n=3) | 0.001 | worse than the best |" in markdown
    page = (tmp_path / "report.html").read_text()
    assert seeds in page and '<td class="text">0.0107 ± 0.0015 (n=4)</td><td class="text">best</td>' in page
    assert "--- Seed repeats" in ran.out and seeds in ran.out
    rows = [line for line in ran.out.splitlines() if " t02 " in line]  # the leaderboard's and the seeds table's
    assert len(rows) == 2
    assert all(re.search(r" 0\.0200 ± 0\.0025 \(n=3\) +(0\.001 +)?worse than the best", row) for row in rows)


def test_a_study_without_repeats_keeps_its_leaderboard_as_it_was(make_study: StudyFactory, tmp_path: Path) -> None:
    root = make_study("plain", [trial(i, COMPLETE, val_mse=0.01 * (i + 1)) for i in range(3)])
    ran = run_report(["--study", "plain", "--root", str(root), "--out", str(tmp_path), "--no-images"], tmp_path)
    assert ran.code == 0, ran.err
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert board["n_seeds"].tolist() == [1, 1, 1] and board["test_mse_mean"].isna().all()
    markdown = (tmp_path / "report.md").read_text()
    assert "over seeds" not in markdown and "vs best" not in markdown and "Seed repeats" not in markdown
    assert "split seed: 0 (the training seed; the study predates split_seed)" in markdown


def test_repeat_of_is_read_as_text_and_is_no_metric(make_study: StudyFactory, tmp_path: Path) -> None:
    original = trial(0, COMPLETE, val_mse=0.01, trial_id="1234e567")
    rows = [original, {**trial(0, COMPLETE, val_mse=0.02), "trial_id": "r1", "number": -1, "repeat_of": "1234e567"}]
    root = make_study("hexids", rows)
    study = load_study(study_paths("hexids", root))
    repeat_of = study.trials.set_index("trial_id")["repeat_of"]
    assert repeat_of["r1"] == "1234e567" and pd.isna(repeat_of["1234e567"])
    assert study.param_columns == sorted(study.param_columns) and "repeat_of" not in study.param_columns
    older = read_study_table(root / "hexids" / "trials.csv").drop(columns="repeat_of").head(1)  # before confirm existed
    older.to_csv(root / "hexids" / "trials.csv", index=False)
    assert load_study(study_paths("hexids", root)).trials["repeat_of"].isna().tolist() == [True]
    ran = run_report(["--study", "hexids", "--root", str(root), "--metric", "repeat_of"], tmp_path)
    assert ran.code == 2 and ran.err.count("\n") == 1 and "unknown metric 'repeat_of'" in ran.err


def test_the_image_grid_shows_test_images_of_the_split_seed(make_study: StudyFactory) -> None:
    from cae.data import load_dataset

    root = make_study("split", [trial(0, COMPLETE, val_mse=0.01, filters="8-16", latent_dim=16)], seed=0, split_seed=5)
    paths = study_paths("split", root)
    save_tiny_model(paths.model_path("t00"))
    study = load_study(paths)
    board = pd.DataFrame([{"trial_id": "t00", "rank": 1, "architecture": "8-16 k3 z16"}])
    grid, _ = best_model_grid(paths, study.meta, board, study.trials, n=2)
    assert grid is not None
    split = load_dataset("embedded", image_size=32, seed=5, limit=2).test[:2]
    training_seed_split = load_dataset("embedded", image_size=32, seed=0, limit=2).test[:2]
    assert not np.allclose(split, training_seed_split)  # the two seeds pick different test images
    np.testing.assert_allclose(grid.truths, np.clip((split + 1) / 2, 0, 1), atol=1e-6)
