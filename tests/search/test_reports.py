"""One record of what a trial reports (``results.reports``): caesweep's own training and a tabular benchmark's
replay write the same records, read back by the same reader into the same table columns and Optuna values."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

import results
from benchmarks import definitions, tabular
from cae.config import VAL_METRICS
from results import reports
from search import commands, records
from search.options import SweepOptions
from spaces import load_space
from tests.benchmarks.conftest import TINY_TABLE_SPACE, write_tiny_table

pytestmark = pytest.mark.slow


def check_reports(root: Path, study: str) -> list[list[reports.Report]]:
    """Every line of every trial's result.json is a report; each trial's epochs run 1, 2, ... and end in one final
    report whose kept validation metrics and costs are the trial's row, and whose objective Optuna holds."""
    trials = results.load_study(results.study_paths(study, root)).trials.set_index("trial_id")
    told = {t.user_attrs["ray_trial_id"]: t.value for t in optuna.load_study(
        study_name=study, storage=f"sqlite:///{root / study / 'optuna.db'}").get_trials(deepcopy=False)}
    read_back = []
    for folder in records.trial_folders(root / study / "ray"):
        lines = records.read_result_lines(folder / "result.json")
        read = [reports.read(line) for line in lines]
        assert all(r is not None for r in read), lines
        epochs = [reports.epoch_of(r) for r in read]
        assert [e.epoch for e in epochs] == list(range(1, len(epochs) + 1))
        assert all(set(e.kept) == set(VAL_METRICS) for e in epochs)
        assert all({"params", "train_seconds", "images_per_second"} <= set(e.costs) for e in epochs)
        final = read[-1]
        assert isinstance(final, reports.FinalReport) and not any(isinstance(r, reports.FinalReport) for r in read[:-1])
        row = trials.loc[folder.name.removeprefix("trial_")]
        for metric in VAL_METRICS:
            value = final.last.kept[metric]
            assert row[metric] == pytest.approx(value, nan_ok=True) or (math.isnan(value) and math.isnan(row[metric]))
        assert row["best_epoch"] == final.best_epoch and row["test_mse"] == pytest.approx(final.scores["test_mse"])
        assert told[folder.name.removeprefix("trial_")] == pytest.approx(final.objective("val_mse"))
        read_back.append(read)
    return read_back


def test_a_real_trial_and_a_replay_write_the_same_records(tmp_path: Path, tiny_space: Path, private_ray) -> None:
    real = SweepOptions(study="real", space=str(tiny_space), root=str(tmp_path), samples=1, max_epochs=2, limit=16,
                        scheduler="none", sampler="random", concurrency=1)
    assert commands.run(real) == 0
    (real_reports,) = check_reports(tmp_path, "real")
    # Each epoch's validation pass is a cost of its own, summed over the epochs so far, and the trial's row has it.
    validation = [reports.epoch_of(r).costs["validation_seconds"] for r in real_reports]
    assert len(validation) == 2 and 0 < validation[0] < validation[1]
    (row,) = results.load_study(results.study_paths("real", tmp_path)).trials.to_dict("records")
    assert row["validation_seconds"] == pytest.approx(validation[-1])

    space_file = tmp_path / "tiny_table.yaml"
    space_file.write_text(TINY_TABLE_SPACE)
    space = load_space(str(space_file))
    table = tabular.load_table(write_tiny_table(tmp_path / "table" / "tiny-16px.csv", space))
    replay = SweepOptions(study="replay", space=str(definitions.write_space(space, tmp_path / "replay.yaml")),
                          root=str(tmp_path), samples=1, sampler="random", scheduler="none", concurrency=1)
    assert commands.run(replay, trainable=tabular.replay_trainable(table)) == 0
    (replay_reports,) = check_reports(tmp_path, "replay")

    real_final, replay_final = real_reports[-1], replay_reports[-1]
    assert isinstance(real_final, reports.FinalReport) and isinstance(replay_final, reports.FinalReport)
    assert set(replay_final.scores) <= set(real_final.scores) <= set(reports.SCORE_KEYS)
    assert set(replay_final.last.record) == set(real_final.last.record)  # the epoch's own metrics, the same ones
