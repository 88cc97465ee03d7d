"""Seed repeats (``python -m search confirm``): mean, std and 95 % CI over the fresh seeds only (the selected run
apart), tested against the best, never ranked on their own.

The numbers come from :func:`tests.analysis.built_studies.confirmed_rows`, whose test MSEs are chosen so that every
mean, standard deviation, interval and p-value can be worked out by hand (written here as closed forms, not
recomputed with the code under test).
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
NO_DIFFERENCE, WORSE = "no difference detected", "worse"
HALF = 0.001 * T975_2 / math.sqrt(3)  # every fresh triple has std 0.001 and n 3


def t4_two_sided(t2: float) -> float:
    """Two-sided p of Student's t with 4 degrees of freedom at t^2 = ``t2``, in closed form: 1 - 3/2 sqrt(s) (1 -
    s/3) with s = t^2 / (t^2 + 4). Welch's test of two triples with equal spread has exactly 4 degrees of
    freedom."""
    s = t2 / (t2 + 4)
    return 1 - 1.5 * math.sqrt(s) * (1 - s / 3)


# t00 vs t01: means 0.014 and 0.012, each std 0.001, n 3: t^2 = 0.002^2 / (2e-6 / 3) = 6. t02 vs t01: 0.021 vs
# 0.012, t^2 = 0.009^2 / (2e-6 / 3) = 121.5. Holm over the two: t02's smaller p x 2, t00's p x 1 (not below it).
P_T00, P_T02 = t4_two_sided(6.0), 2 * t4_two_sided(121.5)


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


def test_seed_statistics_leave_the_selected_run_out(confirmed: Path) -> None:
    seeds = report_of(confirmed).seeds
    assert list(seeds.columns) == [
        "rank", "trial_id", "architecture", "seeds", "n_seeds", "test_mse_selected", "test_mse_seed_mean",
        "test_mse_seed_std", "test_mse_seed_ci95", "variance", "p_vs_best", "vs_best",
    ]
    assert seeds["variance"].tolist() == ["training seed"] * 4  # the repeats share the study's split
    assert seeds[["rank", "trial_id", "architecture", "seeds", "n_seeds", "vs_best"]].to_dict("list") == {
        "rank": [1, 2, 3, 4],
        "trial_id": ["t00", "t01", "t02", "t03"],
        "architecture": ["32-48-64 k3 z128", "16-32 k3 z128", "8-16 k3 z64", "8-16 k3 z16"],
        "seeds": ["101, 102, 103", "101, 102, 103", "101, 102, 103", ""],  # the selected run's seed 0 is not one
        "n_seeds": [3, 3, 3, 0],  # t03's repeats are running or failed
        "vs_best": [NO_DIFFERENCE, "best", WORSE, ""],
    }
    assert seeds["test_mse_selected"].tolist() == [0.011, 0.010, 0.020, 0.021]  # shown apart
    assert seeds["test_mse_seed_mean"].tolist()[:3] == pytest.approx([0.014, 0.012, 0.021], rel=1e-12)
    assert seeds["test_mse_seed_std"].tolist()[:3] == pytest.approx([0.001] * 3, rel=1e-9)
    assert seeds["test_mse_seed_ci95"].tolist()[:3] == pytest.approx([HALF] * 3, rel=1e-9)
    assert seeds.loc[3, ["test_mse_seed_mean", "test_mse_seed_std", "test_mse_seed_ci95"]].isna().all()
    # Welch's t-test against the best fresh mean (t01), Holm-adjusted over the two comparisons.
    assert seeds["p_vs_best"].tolist()[0] == pytest.approx(P_T00, rel=1e-9)
    assert seeds["p_vs_best"].tolist()[2] == pytest.approx(P_T02, rel=1e-6)
    assert abs(P_T00 - 0.0705) < 1e-4 and P_T02 < 0.001
    assert math.isnan(seeds["p_vs_best"][1]) and math.isnan(seeds["p_vs_best"][3])


def test_leaderboard_ranks_search_trials_and_carries_the_seed_statistics(confirmed: Path) -> None:
    report = report_of(confirmed)
    board = report.leaderboard
    optional = ("test_mse_ci95", "skill_ci95")  # intervals over test images, when the trial table has them
    assert list(board.columns) == [c for c in tables.LEADERBOARD if c not in optional or c in report.done.columns]
    assert board["trial_id"].tolist() == ["t00", "t01", "t02", "t03", "t04", "t05"]  # no repeat is ranked
    assert board["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert board["test_mse"].tolist() == [0.011, 0.010, 0.020, 0.021, 0.022, 0.023]  # the selected run's own
    assert board["n_seeds"].tolist() == [3, 3, 3, 0, 0, 0]
    assert board["vs_best"].tolist() == [NO_DIFFERENCE, "best", WORSE, "", "", ""]
    stats = ["test_mse_seed_mean", "test_mse_seed_std", "test_mse_seed_ci95", "p_vs_best"]
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
    assert list(board.columns)[at: at + 4] == ["test_psnr", "test_psnr_seed_mean", "test_psnr_seed_std",
                                               "test_psnr_seed_ci95"]
    raw = read_study_table(confirmed / "confirmed" / "trials.csv")
    psnr = raw[(raw["status"] == COMPLETE) & (raw["repeat_of"] == "t01")]
    row = report.seeds.set_index("trial_id").loc["t01"]
    values = psnr["test_psnr"].to_numpy()
    assert len(values) == 3 and row["test_psnr_selected"] == raw.set_index("trial_id").loc["t01", "test_psnr"]
    assert row["test_psnr_seed_mean"] == pytest.approx(values.mean())
    assert row["test_psnr_seed_ci95"] == pytest.approx(T975_2 * values.std(ddof=1) / math.sqrt(3), rel=1e-10)
    assert row["vs_best"] == "best"  # the highest mean PSNR: higher is better


def test_seed_findings_say_n_the_interval_the_selected_run_and_the_test(confirmed: Path) -> None:
    report = report_of(confirmed)
    said = findings.seeds(report.seeds, report.repeats, "test_mse", CONFIRM)
    assert said == [
        "Seed repeats (confirm: top 4, 3 new seeds each): 12 runs, 9 complete, 1 failed, 2 running.",
        "Over fresh training seeds, same data split, mean ± 95 % CI (training-seed variance only; the selected run "
        "is left out: it won the ranking on its own scores, so it is no evidence for itself): 32-48-64 k3 z128 "
        "(t00): test MSE 0.0140 ± 0.0025 (n = 3; selected run 0.011); 16-32 k3 z128 (t01): test MSE 0.0120 ± "
        "0.0025 (n = 3; selected run 0.01); 8-16 k3 z64 (t02): test MSE 0.0210 ± 0.0025 (n = 3; selected run "
        "0.02).",
        "t03: fewer than 2 fresh seeds finished with test scores, so it has no interval over seeds and no test "
        "against the best.",
        "Against the best mean over fresh seeds, 16-32 k3 z128 (t01) (Welch's t-test on test MSE, Holm-adjusted "
        "over 2 comparisons): worse: 8-16 k3 z64 (t02) (p < 0.001); no difference detected: 32-48-64 k3 z128 (t00) "
        "(p = 0.07). No difference detected is not equality: with a few seeds a side the test misses differences "
        "of a few standard deviations.",
        "The search ranked 32-48-64 k3 z128 (t00) first among these; over fresh seeds 16-32 k3 z128 (t01) has the "
        "better mean test MSE, but no difference between them is detected (p = 0.07), so the seeds neither "
        "confirm nor overturn the search's order.",
    ]
    assert report.findings.index(said[0]) == 2
    assert not any("did not hold" in s or "do not tell them apart" in s for s in said)
    overturned = report.seeds.assign(vs_best=[WORSE, "best", WORSE, ""], p_vs_best=[0.01, np.nan, 0.001, np.nan])
    assert findings.seeds(overturned, report.repeats, "test_mse", None)[-1] == (
        "The search ranked 32-48-64 k3 z128 (t00) first among these, but over fresh seeds it is worse than 16-32 "
        "k3 z128 (t01) (p = 0.01): a single seed's ranking did not hold."
    )
    apart = report.seeds.iloc[1:3]  # t01 and t02 only: the search's first is the best
    assert findings.seeds(apart, report.repeats, "test_mse", None)[-1] == (
        "Against the best mean over fresh seeds, 16-32 k3 z128 (t01) (Welch's t-test on test MSE, Holm-adjusted "
        "over 1 comparison): worse: 8-16 k3 z64 (t02) (p < 0.001)."
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
    assert board["n_seeds"].tolist() == [3, 3, 3, 0, 0, 0]
    assert board["test_mse_seed_ci95"].tolist()[:3] == pytest.approx([HALF] * 3, rel=1e-6)
    assert board["p_vs_best"].tolist()[:3] == pytest.approx([P_T00, math.nan, P_T02], rel=1e-6, nan_ok=True)
    assert board["vs_best"].fillna("").tolist() == [NO_DIFFERENCE, "best", WORSE, "", "", ""]
    seeds = "training seed: 0; split seed: 7; seed repeats: top 4, 3 new training seeds each"
    markdown = (tmp_path / "report.md").read_text()
    assert seeds in markdown and "## Seed repeats" in markdown
    assert "| test MSE over fresh seeds (95 % CI, training seeds) | p vs best | vs best |" in markdown
    assert "| 0.011 | 0.0140 ± 0.0025 (n=3) | 0.07 | no difference detected | 25.61 |" in markdown
    assert ("| 3 | t02 | 8-16 k3 z64 | 101, 102, 103 | 0.02 | 0.0210 ± 0.0025 (n=3) | 0.001 | training seed | "
            "0.00077 | worse |" in markdown)
    assert "MSE on pixel values in [-1, 1], 4x the same error on [0, 1]" in markdown
    page = (tmp_path / "report.html").read_text()
    assert seeds in page and '<td class="text">0.0120 ± 0.0025 (n=3)</td><td></td><td class="text">best</td>' in page
    assert "--- Seed repeats" in ran.out and seeds in ran.out
    rows = [line for line in ran.out.splitlines() if " t02 " in line]  # the leaderboard's and the seeds table's
    assert len(rows) == 2
    assert all(re.search(r" 0\.0210 ± 0\.0025 \(n=3\) +(0\.001 +training seed +)?0\.00077 +worse", row)
               for row in rows)


def test_a_study_without_repeats_keeps_its_leaderboard_as_it_was(make_study: StudyFactory, tmp_path: Path) -> None:
    root = make_study("plain", [trial(i, COMPLETE, val_mse=0.01 * (i + 1)) for i in range(3)])
    ran = run_report(["--study", "plain", "--root", str(root), "--out", str(tmp_path), "--no-images"], tmp_path)
    assert ran.code == 0, ran.err
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert board["n_seeds"].tolist() == [0, 0, 0] and board["test_mse_seed_mean"].isna().all()
    markdown = (tmp_path / "report.md").read_text()
    leaderboard = markdown.split("## Leaderboard")[1].split("##")[0]
    assert "over fresh seeds" not in markdown and "vs best" not in leaderboard and "Seed repeats" not in markdown
    assert "| selection |" in leaderboard
    assert "best of 3 finished trials by val_mse, one training seed each" in leaderboard
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


def test_an_interval_over_test_images_is_joined_to_its_score(make_study: StudyFactory, tmp_path: Path) -> None:
    # A trial table with test_mse_ci95 (the half-width of a bootstrap interval over the test split's images) shows
    # it next to the run's test MSE, named by the variance it includes, apart from any interval over seeds.
    rows = [trial(i, COMPLETE, val_mse=0.01 * (i + 1), test_mse_ci95=0.004 if i else None, skill_ci95=0.05)
            for i in range(3)]
    root = make_study("images", rows)
    ran = run_report(["--study", "images", "--root", str(root), "--out", str(tmp_path), "--no-images"], tmp_path)
    assert ran.code == 0, ran.err
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert board.columns.tolist()[7:9] == ["test_mse", "test_mse_ci95"]
    assert board["test_mse_ci95"].tolist()[1:] == [0.004, 0.004] and math.isnan(board["test_mse_ci95"][0])
    markdown = (tmp_path / "report.md").read_text()
    assert "| test MSE (95 % CI, test images) |" in markdown
    assert "| 0.0105 |" in markdown and "| 0.0210 ± 0.0040 |" in markdown and "| 0.0315 ± 0.0040 |" in markdown
    assert "| skill (95 % CI, test images) |" in markdown and "| 0.475 ± 0.050 |" in markdown
    assert "Best trial t00 (32-48-64 k3 z64): val MSE 0.01, test MSE 0.0105 against" in ran.out  # no interval: none
    assert "test_mse_ci95" not in tables.METRICS  # an interval is not a score to rank by


def test_repeats_over_several_splits_say_their_interval_includes_the_split(make_study: StudyFactory) -> None:
    rows = confirmed_rows()
    for row in rows:  # t00's repeats on split seeds 7, 8, 9; the others on the study's split 7
        row["split_seed"] = 6 + int(row["trial_id"][-1]) if row["trial_id"].startswith("t00-r") else 7
    root = make_study("confirmed", rows, split_seed=7, confirm=CONFIRM)
    report = report_of(root)
    assert report.seeds["variance"].tolist() == [tables.SPLIT_VARIANCE] + [tables.SEED_VARIANCE] * 3
    said = findings.seeds(report.seeds, report.repeats, "test_mse", CONFIRM)[1]
    assert said.startswith("Over fresh training seeds and data splits, mean ± 95 % CI (training-seed and split "
                           "variance: the test images differ between splits;")
