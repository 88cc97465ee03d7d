"""Importance: distributions inferred from the trial table, and both evaluators on finished trials."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from analysis import tables
from analysis.importance import distribution, importance, to_optuna_study
from results import load_study, study_paths


@pytest.fixture(scope="module")
def done(study_root: Path) -> pd.DataFrame:
    trials = tables.prepare_trials(load_study(study_paths("realistic", study_root)).trials)
    return tables.finished(trials, "val_mse")


def test_distributions_follow_the_column() -> None:
    assert distribution("lr", pd.Series([1e-4, 3e-3, 1e-2])) == FloatDistribution(1e-4, 1e-2, log=True)
    assert distribution("filters", pd.Series(["16-32", "8-16", "16-32"])) == CategoricalDistribution(["16-32", "8-16"])
    assert distribution("skip", pd.Series([True, False])) == CategoricalDistribution([False, True])
    assert distribution("kernel_size", pd.Series([3, 5, 7, 3])) == CategoricalDistribution([3, 5, 7])
    assert distribution("latent_dim", pd.Series(range(8, 100, 8))) == IntDistribution(8, 96)
    assert distribution("noise", pd.Series([0.01 * i for i in range(10)])) == FloatDistribution(0.0, 0.09)


def test_the_optuna_study_holds_one_trial_per_row(done: pd.DataFrame) -> None:
    study = to_optuna_study(done, ["filters", "lr", "skip"], "val_mse", "min")
    assert len(study.trials) == len(done)
    assert study.best_value == done["val_mse"].min()
    assert study.best_params["filters"] == "8-16"


def test_importance_ranks_the_dominant_hyperparameter_first(done: pd.DataFrame) -> None:
    params = ["filters", "kernel_size", "latent_dim", "skip", "lr", "batch_size", "image_size"]
    result = importance(done, params, "val_mse", "min")
    assert result.note == ""
    table = result.table
    assert list(table.columns) == ["param", "fanova", "ped_anova"]
    assert set(table["param"]) == set(params) - {"image_size"}  # constant: nothing to attribute
    assert table["param"][0] == "kernel_size"  # the fixture's val_mse grows with the kernel size
    assert table["fanova"].sum() == pytest.approx(1.0) and table["ped_anova"].sum() == pytest.approx(1.0)


def test_importance_says_why_it_cannot_be_estimated(done: pd.DataFrame) -> None:
    few = importance(done.head(3), ["kernel_size", "lr"], "val_mse", "min")
    assert few.table.empty and few.note == "importance cannot be estimated from 3 finished trials (needs at least 4)"
    one = importance(done, ["kernel_size", "image_size"], "val_mse", "min")
    assert one.table.empty and one.note.endswith("only kernel_size varies among the finished trials")
    none = importance(done.head(0), ["kernel_size"], "val_mse", "min")
    assert none.note.startswith("importance cannot be estimated from 0 finished trials")


def test_a_large_study_is_estimated_on_a_seeded_sample(done: pd.DataFrame) -> None:
    params = ["filters", "kernel_size", "latent_dim", "lr"]
    cap = len(done) - 1
    sampled = importance(done, params, "val_mse", "min", max_trials=cap)
    assert sampled.note == f"importance estimated on {cap} of the {len(done)} finished trials, drawn at random (seed 0)"
    subset = done.sample(n=cap, random_state=0).sort_index()  # the same draw, every time
    pd.testing.assert_frame_equal(importance(subset, params, "val_mse", "min").table, sampled.table)
