"""The report's tables, checked exactly against the trial table they come from (read back independently)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from scipy import stats

from analysis import tables
from analysis.metrics import check_metric, fmt, mode
from cae.errors import UsageError
from results import load_study, study_paths
from tests.conftest import read_study_table


@pytest.fixture(scope="module")
def study(study_root: Path):
    return load_study(study_paths("realistic", study_root))


@pytest.fixture(scope="module")
def raw(study_root: Path) -> pd.DataFrame:
    """trials.csv as plain pandas reads it: the reference the tables are checked against."""
    return read_study_table(study_root / "realistic" / "trials.csv")


@pytest.fixture(scope="module")
def done(study) -> pd.DataFrame:
    return tables.rank(tables.finished(tables.prepare_trials(study.trials), "val_mse"), "val_mse", "min")


def test_metric_directions_are_defined_once() -> None:
    assert [mode(m) for m in ("val_mse", "test_mse", "val_loss", "params", "train_seconds")] == ["min"] * 5
    assert [mode(m) for m in ("test_psnr", "val_ssim", "skill", "images_per_second")] == ["max"] * 4
    assert check_metric("test_ssim") == "test_ssim"
    with pytest.raises(UsageError, match="unknown metric 'accuracy'; use one of val_mse"):
        check_metric("accuracy")
    with pytest.raises(UsageError):
        check_metric("architecture")  # a column, but not a metric


def test_cells_are_formatted_by_column() -> None:
    assert [fmt("val_mse", 0.0123456), fmt("test_psnr", 27.349), fmt("test_ssim", 0.97912), fmt("params", 33200)] == [
        "0.01235", "27.35", "0.979", "33,200"
    ]
    assert [fmt("val_mse mean", float("nan")), fmt("lr", 0.00123), fmt("train_seconds", 12), fmt("skip", True)] == [
        "", "0.0012", "12.0", "True"
    ]


def test_finished_keeps_complete_trials_with_the_metric(done: pd.DataFrame, raw: pd.DataFrame) -> None:
    expected = raw[(raw["status"] == "COMPLETE") & raw["val_mse"].notna()]
    assert sorted(done["trial_id"]) == sorted(expected["trial_id"])
    assert len(done) == 14


def test_leaderboard_is_the_top_k_by_the_metric(done: pd.DataFrame, raw: pd.DataFrame) -> None:
    board = tables.leaderboard(done, "val_mse", "min", 5, extra=["activation"])
    expected = raw[raw["status"] == "COMPLETE"].sort_values("val_mse").head(5)
    assert list(board["trial_id"]) == list(expected["trial_id"])
    assert list(board["rank"]) == [1, 2, 3, 4, 5]
    # activation is not a column of this study; the intervals over test images are there when its trials have them
    optional = ("test_mse_ci95", "skill_ci95")
    assert list(board.columns) == [c for c in tables.LEADERBOARD if c not in optional or c in done.columns]
    assert board["selection"].tolist() == ["best of 14 finished trials by val_mse, one training seed each"] + [""] * 4
    assert (board["pixel_range"] == "[-1, 1]").all() and (board["n_seeds"] == 0).all()
    for column in ("architecture", "lr", "batch_size", "loss", "val_mse", "test_mse", "test_psnr", "test_ssim",
                   "skill", "params", "epochs", "train_seconds"):
        assert list(board[column]) == list(expected[column]), column
    by_psnr = tables.leaderboard(done, "test_psnr", "max", 3)
    assert list(by_psnr["trial_id"]) == list(raw.sort_values("test_psnr", ascending=False)["trial_id"].head(3))
    assert by_psnr["selection"][0] == (
        "best of 14 finished trials by test_psnr, one training seed each; selected on the test split, so its test "
        "score is optimistic"
    )
    assert "test_psnr" in by_psnr and "val_psnr" in tables.leaderboard(done, "val_psnr", "max", 3)


def test_status_counts_and_failure_reasons(study) -> None:
    trials = tables.prepare_trials(study.trials)
    expected = pd.DataFrame(
        {"status": ["COMPLETE", "PRUNED", "FAILED", "RUNNING", "PENDING"], "n": [14, 3, 2, 1, 0]}
    )
    assert_frame_equal(tables.status_counts(trials, "val_mse"), expected)
    reasons = tables.failure_reasons(trials)
    assert reasons.to_dict("records") == [
        {"status": "FAILED", "reason": "DivergedError: loss became nan at epoch 1", "n": 1},
        {"status": "FAILED", "reason": "ValueError: <img src=x onerror=alert(1)>", "n": 1},
        {"status": "PRUNED", "reason": "pruned by ASHA at epoch 2", "n": 3},
    ]
    assert tables.failure_reasons(trials, top=1)["status"].tolist() == ["FAILED", "PRUNED"]


def test_group_summary_matches_groupby(done: pd.DataFrame, raw: pd.DataFrame) -> None:
    complete = raw[raw["status"] == "COMPLETE"]
    for param in ("kernel_size", "latent_dim", "batch_size"):
        expected = complete.groupby(param)["val_mse"].agg(["mean", "std", "size", "min"]).reset_index()
        expected.columns = [param, "val_mse mean", "val_mse std", "n", "val_mse best"]
        got = tables.group_summary(done, param, "val_mse", "min")
        assert_frame_equal(got[expected.columns], expected, check_dtype=False)
        assert (got["pruned"] == 0).all()  # no pruned trials given
    filters = tables.group_summary(done, "filters", "val_mse", "min")
    assert filters["filters"].tolist() == ["8-16", "16-32", "8-16-32", "32-48-64"]  # by depth, then widths
    assert filters["n"].sum() == 14
    best = tables.group_summary(done, "kernel_size", "test_psnr", "max")["test_psnr best"]
    assert best.tolist() == complete.groupby("kernel_size")["test_psnr"].max().tolist()


def test_group_summary_tests_each_value_against_the_best_and_counts_the_pruned(study, raw: pd.DataFrame) -> None:
    trials = tables.prepare_trials(study.trials)
    done = tables.finished(trials, "val_mse")
    pruned = trials[trials["status"] == "PRUNED"]
    table = tables.group_summary(done, "kernel_size", "val_mse", "min", pruned).set_index("kernel_size")
    # The realistic study's pruned trials are numbers 14, 15 and 16: kernels 7, 3 and 5.
    assert table["pruned"].to_dict() == {3: 1, 5: 1, 7: 1}
    complete = raw[raw["status"] == "COMPLETE"]
    by_kernel = {k: complete.loc[complete["kernel_size"] == k, "val_mse"] for k in (3, 5, 7)}
    raw_p = {k: stats.ttest_ind(by_kernel[k], by_kernel[3], equal_var=False).pvalue for k in (5, 7)}
    first, second = sorted(raw_p, key=raw_p.get)  # Holm over two: the smaller p x 2, the larger x 1 (not below)
    holm = {first: min(1.0, 2 * raw_p[first])}
    holm[second] = max(holm[first], raw_p[second])
    assert table.loc[3, "vs_best"] == "best" and np.isnan(table.loc[3, "p_vs_best"])  # val grows with kernel size
    assert table.loc[[5, 7], "p_vs_best"].tolist() == pytest.approx([holm[5], holm[7]])
    assert table.loc[[5, 7], "vs_best"].tolist() == ["worse" if holm[k] < 0.05 else "no difference detected"
                                                     for k in (5, 7)]
    single = tables.group_summary(done.head(3), "kernel_size", "val_mse", "min")  # one trial per kernel
    assert single["vs_best"].tolist() == ["", "", ""] and single["p_vs_best"].isna().all()


def test_continuous_hyperparameters_are_binned_in_log_space(done: pd.DataFrame) -> None:
    summary = tables.group_summary(done, "lr", "val_mse", "min")
    assert len(summary) == tables.BINS and summary["n"].sum() == len(done)
    edges = [float(label.split("..")[0]) for label in summary["lr"].astype(str)]
    assert edges == sorted(edges) and edges[0] == pytest.approx(done["lr"].min(), rel=0.05)
    assert tables.levels(done["kernel_size"]).equals(done["kernel_size"])  # few values: not binned


def test_pivot_means_and_counts(done: pd.DataFrame, raw: pd.DataFrame) -> None:
    complete = raw[raw["status"] == "COMPLETE"]
    means = tables.pivot(done, "filters", "kernel_size", "val_mse")
    counts = tables.pivot(done, "filters", "kernel_size", "val_mse", how="count")
    assert list(means.columns) == ["filters", "kernel_size=3", "kernel_size=5", "kernel_size=7"]
    assert means["filters"].tolist() == counts["filters"].tolist() == ["8-16", "16-32", "8-16-32", "32-48-64"]
    for _, row in means.iterrows():
        for kernel in (3, 5, 7):
            cell = complete[(complete["filters"] == row["filters"]) & (complete["kernel_size"] == kernel)]["val_mse"]
            got = row[f"kernel_size={kernel}"]
            assert (np.isnan(got) and cell.empty) or got == pytest.approx(cell.mean())
    assert counts.iloc[:, 1:].to_numpy().sum() == 14


def test_best_nuisance_setting_per_scientific_value(done: pd.DataFrame, raw: pd.DataFrame) -> None:
    table = tables.best_nuisance(done, "kernel_size", ["lr", "batch_size"], "val_mse", "min")
    assert list(table.columns) == ["kernel_size", "trial_id", "lr", "batch_size", "val_mse", "n"]
    complete = raw[raw["status"] == "COMPLETE"]
    for _, row in table.iterrows():
        group = complete[complete["kernel_size"] == row["kernel_size"]]
        best = group.loc[group["val_mse"].idxmin()]
        assert (row["trial_id"], row["lr"], row["batch_size"], row["n"]) == (
            best["trial_id"], best["lr"], best["batch_size"], len(group)
        )


def test_correlations_match_scipy_and_skip_constant_or_text_columns(done: pd.DataFrame, raw: pd.DataFrame) -> None:
    table = tables.correlations(done, ["filters", "kernel_size", "latent_dim", "lr", "image_size"], "val_mse")
    assert table["param"].tolist() == ["kernel_size", "latent_dim", "lr"]  # filters is text, image_size constant
    complete = raw[raw["status"] == "COMPLETE"]
    raw_p = []
    for row in table.itertuples():
        rho, p = stats.spearmanr(complete[row.param], complete["val_mse"])
        assert (row.rho, row.p_value, row.n) == (pytest.approx(rho), pytest.approx(p), 14)
        raw_p.append(p)
    # Holm over the three: the smallest times 3, the next times 2 (at least the first), the largest times 1.
    order = np.argsort(raw_p)
    steps = np.maximum.accumulate([min(1.0, (3 - i) * raw_p[j]) for i, j in enumerate(order)])
    assert table["p_holm"].to_numpy()[order].tolist() == pytest.approx(steps.tolist())
    assert table.set_index("param").loc["kernel_size", "strength"] == "strong"
    assert [tables._strength(r) for r in (0.1, -0.3, 0.5, -0.9)] == ["none", "weak", "moderate", "strong"]


def test_pareto_set_known_answer() -> None:
    done = pd.DataFrame({
        "trial_id": list("abcdef"), "architecture": list("ABCDEF"),
        "params": [100, 200, 200, 300, 400, np.nan], "val_mse": [0.5, 0.3, 0.4, 0.35, 0.1, 0.01],
    })
    front = tables.pareto(done, "val_mse", "min", "params")
    assert front["trial_id"].tolist() == ["a", "b", "e"]  # c and d are dominated by b; f has no cost
    assert list(front.columns) == ["trial_id", "architecture", "params", "val_mse"]
    higher = tables.pareto(done.assign(psnr=-done["val_mse"]), "psnr", "max", "params")
    assert higher["trial_id"].tolist() == ["a", "b", "e"]


def test_optimization_history_best_so_far_and_compute(study, raw: pd.DataFrame) -> None:
    history = tables.optimization_history(tables.prepare_trials(study.trials), "val_mse", "min")
    ended = raw[raw["status"] != "RUNNING"].sort_values("number")
    assert history["trial_id"].tolist() == ended["trial_id"].tolist()
    values = ended["val_mse"].where(ended["status"] == "COMPLETE")
    assert history["best_so_far"].tolist() == pytest.approx(values.cummin().ffill().tolist())
    assert history["cumulative_seconds"].tolist() == pytest.approx(ended["train_seconds"].cumsum().tolist())
    assert history["val_mse"].notna().sum() == 14


def test_learning_curves_of_the_leaderboard(study, done: pd.DataFrame) -> None:
    board = tables.leaderboard(done, "val_mse", "min", 2)
    curves = tables.learning_curves(study.history, board)
    assert list(curves.columns) == ["trial", "epoch", "split", "measure", "value"]
    assert curves["trial"].unique().tolist() == [f"#1 {board['architecture'][0]}", f"#2 {board['architecture'][1]}"]
    first = study.history[study.history["trial_id"] == board["trial_id"][0]]
    val = curves[(curves["trial"].str.startswith("#1")) & (curves["split"] == "val")]
    assert val["value"].tolist() == first["val_mse"].tolist() and len(curves) == 2 * 2 * 6


def test_study_row_for_the_comparison(study) -> None:
    row = tables.study_row("realistic", study.meta, tables.prepare_trials(study.trials), "val_mse", "min")
    assert {k: row[k] for k in ("study", "trials", "complete", "pruned", "failed", "best val_mse")} == {
        "study": "realistic", "trials": 20, "complete": 14, "pruned": 3, "failed": 2, "best val_mse": 0.003
    }
    assert row["best architecture"] == "8-16 k3 z16"


def test_architecture_label_is_filled_in_when_missing(study) -> None:
    trials = study.trials.copy()
    trials["architecture"] = np.nan
    labelled = tables.prepare_trials(trials)
    assert labelled["architecture"].tolist() == study.trials["architecture"].tolist()
