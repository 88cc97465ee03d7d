"""The end-of-sweep table in the terminal: the settings the study varied, the scores, no empty columns."""

from __future__ import annotations

import math

import pandas as pd

from search.summary import _table, summarise


def trials(**columns: list) -> pd.DataFrame:
    base = {
        "number": [0, 1, 2], "architecture": ["16-32 k3 z64", "16-32 k3 z64 skip", "16-32 k3 z64"],
        "task": ["colorize-lab", "colorize-lab", "colorize-yuv"], "lr": [2e-3, 2e-3, 2e-3],
        "batch_size": [64, 64, 64], "loss": ["mse", "mse", "mse"], "val_mse": [0.03, 0.02, 0.05],
        "test_mse": [0.04, 0.03, 0.06], "skill": [0.5, 0.6, 0.4], "skill_pca": [math.nan] * 3,
        "params": [100, 120, 100], "epochs": [3, 3, 3],
    }
    return pd.DataFrame({**base, **columns})


def test_the_table_shows_what_the_study_varied_and_hides_what_it_did_not() -> None:
    done = trials()
    header = _table(done.sort_values("val_mse").head(2), "val_mse", done).splitlines()[0].split()
    assert header == ["number", "architecture", "task", "val_mse", "test_mse", "skill", "params", "epochs"]
    # The shown rows may agree on a setting the study varied: it is still shown (it was compared).
    header = _table(done.head(2), "val_mse", done).splitlines()[0].split()
    assert "task" in header


def test_reconstruction_shows_skill_against_pca_and_a_tuned_learning_rate() -> None:
    done = trials(task=["reconstruct"] * 3, lr=[1e-3, 3e-3, 1e-3], skill_pca=[0.1, -0.2, 0.05])
    header = _table(done, "val_mse", done).splitlines()[0].split()
    assert header == ["number", "architecture", "lr", "val_mse", "test_mse", "skill", "skill_pca", "params", "epochs"]


def test_a_study_that_trained_nothing_says_so_and_is_not_a_failure(tmp_path, capsys) -> None:
    """A warm start that already holds every configuration of a finite space trains nothing: that is no failure."""
    empty = pd.DataFrame(columns=["trial_id", "status", "error"])
    assert summarise(empty, {"name": "warm", "metric": "val_mse", "mode": "min"}, tmp_path / "warm") == 0
    out = capsys.readouterr().out
    assert "no trial was trained here (none failed either)" in out and "most common reasons" not in out
