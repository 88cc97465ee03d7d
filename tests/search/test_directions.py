"""Explicit directions: ``--objectives val_mse:max`` is followed by the Optuna study, study.json, the terminal
summary and the report, instead of a direction guessed from the metric's name; a bad suffix is one line."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest

from analysis.report import main as report_main
from benchmarks.synthetic import synthetic_trainable
from cae.errors import UsageError
from search import commands
from search.cli import main
from search.options import SweepOptions, parse_objectives
from tests.conftest import in_process, read_study_table
from tests.search.test_cli_errors import assert_user_error


def test_directions_are_given_or_the_metrics_known_ones() -> None:
    assert parse_objectives("val_mse:min,params:max") == (("val_mse", "params"), ("min", "max"))
    assert parse_objectives("val_psnr,params") == (("val_psnr", "params"), ("max", "min"))
    options = SweepOptions(study="s", objectives=("val_mse:max",))
    assert options.objectives == ("val_mse",) and options.modes == ("max",)
    assert SweepOptions.from_dict(options.to_dict()).modes == ("max",)
    assert SweepOptions.from_dict({"study": "old", "objectives": ["val_ssim"]}).modes == ("max",)
    with pytest.raises(UsageError, match=r"objective 'val_mse:up': unknown direction 'up'; write val_mse:min or "
                                         r"val_mse:max"):
        parse_objectives("val_mse:up")


def test_a_bad_direction_on_the_command_line_is_one_line(tmp_path: Path) -> None:
    proc = in_process(main, "run", "--root", str(tmp_path / "r"), "--objectives", "val_mse:sideways")
    assert_user_error(proc, "unknown direction 'sideways'")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_given_direction_is_followed_by_optuna_the_study_and_the_report(
    tmp_path: Path, tiny_space: Path, private_ray
) -> None:
    opts = SweepOptions(study="up", space=str(tiny_space), root=str(tmp_path), samples=3, max_epochs=2, limit=16,
                        sampler="random", scheduler="none", concurrency=1, objectives=("val_mse:max",))
    assert commands.run(opts, trainable=synthetic_trainable()) == 0
    study = optuna.load_study(study_name="up", storage=f"sqlite:///{tmp_path / 'up' / 'optuna.db'}")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    meta = json.loads((tmp_path / "up" / "study.json").read_text())
    assert meta["mode"] == "max" and meta["objectives"] == [{"metric": "val_mse", "mode": "max"}]
    assert report_main(["--study", "up", "--root", str(tmp_path), "--no-images"]) == 0
    board = pd.read_csv(tmp_path / "up" / "report" / "leaderboard.csv")
    assert list(board["val_mse"]) == sorted(board["val_mse"], reverse=True)  # highest first, as asked
    assert study.best_value == board["val_mse"].iloc[0]


@pytest.mark.slow
def test_colourfulness_beside_an_mse_is_maximised_at_the_kept_epoch(
    tmp_path: Path, tiny_space: Path, private_ray
) -> None:
    """``--objectives val_mse,val_colorfulness`` on a colouriser: Optuna maximises the second, and what it is told
    is the kept epoch's val colourfulness, the value trials.csv and history.csv hold (real training)."""
    opts = SweepOptions(study="colour", space=str(tiny_space), root=str(tmp_path), samples=2, max_epochs=2, limit=16,
                        sampler="random", scheduler="none", concurrency=1, task="colorize-yuv",
                        objectives=("val_mse", "val_colorfulness"))
    assert commands.run(opts) == 0
    study = optuna.load_study(study_name="colour", storage=f"sqlite:///{tmp_path / 'colour' / 'optuna.db'}")
    assert study.directions == [optuna.study.StudyDirection.MINIMIZE, optuna.study.StudyDirection.MAXIMIZE]
    trials = read_study_table(tmp_path / "colour" / "trials.csv").set_index("number")
    history = read_study_table(tmp_path / "colour" / "history.csv")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2
    for t in done:
        row = trials.loc[t.number]
        assert t.values[1] == pytest.approx(row["val_colorfulness"]) and row["val_colorfulness"] > 0
        epochs = history[history["trial_id"] == row["trial_id"]].set_index("epoch")
        assert epochs.loc[int(row["best_epoch"]), "val_colorfulness"] == pytest.approx(row["val_colorfulness"])
