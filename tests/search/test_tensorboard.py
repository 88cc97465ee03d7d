"""The TensorBoard hook on a real (tiny) training run, read back with TensorBoard's own readers.

A three-epoch run logs into a trial's run folder; its curves must equal ``history.csv`` (written and read
back through ``results``). Then a "restarted worker" resumes from the epoch-1 checkpoint into the same
folder, as a trial does when its process died after logging epochs 2 and 3 but before checkpointing them:
no step may appear twice, and the curves must be those of the resumed history.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import api_pb2, metadata
from tensorboard.util.tensor_util import make_ndarray

import results
from cae import checkpoint
from cae.config import ModelConfig, RunConfig, TrainConfig
from cae.data import Dataset
from cae.training import EpochState, TrainResult, train
from search.tensorboard import FINAL_METRICS, TRAIN, VALIDATION, EpochLogger, tag_for, write_final
from tests.conftest import read_study_table

RUN = RunConfig(
    model=ModelConfig(filters=(8, 16), latent_dim=16),
    train=TrainConfig(task="reconstruct", epochs=3, batch_size=4, lr=3e-3, seed=0, patience=None),
    image_size=16,
)
TRIAL = "a1b2c3d4"
HPARAMS = {"filters": "8-16", "latent_dim": 16, "lr": 3e-3, "skip": False, "loss": None}


@dataclass(frozen=True)
class Logged:
    paths: results.StudyPaths
    straight: TrainResult
    resumed: TrainResult


def history_csv(paths: results.StudyPaths, history: list[dict[str, float]]) -> pd.DataFrame:
    """``history`` written as the study's history.csv and read back, as a sweep and a reader would."""
    rows = [dict(r, trial_id=TRIAL) for r in history]
    results.write_tables(paths, results.trials_frame([]), results.history_frame(rows))
    return read_study_table(paths.history_csv)


def scalars(folder: Path) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """(sub-run, tag) -> [(step, value)] of every scalar in the event files, in file order, repeats kept
    (TensorBoard's loader hands scalars over as tensors, whatever form they were written in)."""
    out: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for run in (TRAIN, VALIDATION):
        for path in sorted((folder / run).glob("events.out.tfevents.*")):
            for event in EventFileLoader(str(path)).Load():
                for value in event.summary.value:
                    out.setdefault((run, value.tag), []).append((event.step, make_ndarray(value.tensor).item()))
    return out


def assert_curves_equal(folder: Path, history: pd.DataFrame) -> None:
    logged = scalars(folder)
    columns = [c for c in history.columns if c not in ("trial_id", "epoch") and history[c].notna().all()]
    assert set(logged) == {tag_for(c) for c in columns}
    for column in columns:
        steps, values = zip(*logged[tag_for(column)], strict=True)
        assert list(steps) == history["epoch"].tolist(), column  # each epoch once, in order
        assert values == pytest.approx(history[column].tolist(), rel=1e-6), column  # float32 events


@pytest.fixture(scope="module")
def logged(tiny_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Logged:
    paths = results.study_paths("tb", tmp_path_factory.mktemp("results"))
    saved = tmp_path_factory.mktemp("checkpoint")

    def keep_epoch1(state: EpochState) -> None:
        if state.epoch == 1:
            checkpoint.save(saved, state.model, state.progress, state.best_weights)

    log_dir = paths.tensorboard_run(TRIAL)
    straight = train(RUN, tiny_dataset, hooks=[EpochLogger(log_dir, TRIAL, HPARAMS), keep_epoch1])
    first = scalars(log_dir)
    assert_curves_equal(log_dir, history_csv(paths, straight.history))
    resumed = train(RUN, tiny_dataset, hooks=[EpochLogger(log_dir, TRIAL, HPARAMS)], resume_from=str(saved))
    assert first != scalars(log_dir)  # epochs 2 and 3 were trained again, with other values
    return Logged(paths, straight, resumed)


def test_a_resumed_trial_logs_each_epoch_once_with_the_resumed_values(logged: Logged) -> None:
    assert [r["epoch"] for r in logged.resumed.history] == [1, 2, 3]
    assert_curves_equal(logged.paths.tensorboard_run(TRIAL), history_csv(logged.paths, logged.resumed.history))


def test_tensorboard_shows_train_and_validation_curves_of_each_metric(logged: Logged) -> None:
    """What TensorBoard itself loads (its event accumulator, one per sub-run), as a Keras run would have it."""
    expected = {
        TRAIN: {"epoch_loss", "epoch_mse", "epoch_psnr", "epoch_ssim", "epoch_seconds"},
        VALIDATION: {"epoch_loss", "epoch_mse", "epoch_native_mse", "epoch_psnr", "epoch_ssim", "epoch_colorfulness"},
    }
    for run, tags in expected.items():
        accumulator = EventAccumulator(str(logged.paths.tensorboard_run(TRIAL) / run)).Reload()
        assert set(accumulator.Tags()["scalars"]) == tags
        val_mse = [(e.step, e.value) for e in accumulator.Scalars("epoch_mse")]
        key = "val_mse" if run == VALIDATION else "mse"
        assert val_mse == [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in logged.resumed.history]


def session(folder: Path) -> tuple[EventAccumulator, dict[str, bytes]]:
    accumulator = EventAccumulator(str(folder)).Reload()
    return accumulator, accumulator.PluginTagToContent(metadata.PLUGIN_NAME)


def test_the_hparams_session_starts_with_the_trial_and_is_closed_once_by_write_final(logged: Logged) -> None:
    folder = logged.paths.tensorboard_run(TRIAL)
    _, content = session(folder)
    assert set(content) == {metadata.SESSION_START_INFO_TAG}  # written at the first epoch, kept by the resume
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert start.group_name == TRIAL
    assert {k: v.WhichOneof("kind") for k, v in start.hparams.items()} == {
        "filters": "string_value", "latent_dim": "number_value", "lr": "number_value", "skip": "bool_value"
    }  # the unset "loss" is left out
    assert (start.hparams["lr"].number_value, start.hparams["filters"].string_value) == (3e-3, "8-16")

    final = {**logged.resumed.summary(), **logged.resumed.test, "node": "10.0.0.1/abc", "pca_matched": True}
    for _ in range(2):  # a final report repeated after a restart
        write_final(folder, TRIAL, HPARAMS, final, step=3)
    accumulator, content = session(folder)
    assert set(content) == {metadata.SESSION_START_INFO_TAG, metadata.SESSION_END_INFO_TAG}
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.STATUS_SUCCESS
    assert set(accumulator.Tags()["scalars"]) == set(FINAL_METRICS)
    for name in FINAL_METRICS:
        assert [(e.step, e.value) for e in accumulator.Scalars(name)] == [(3, pytest.approx(final[name], rel=1e-6))]
    events = [e for p in folder.glob("events.out.tfevents.*") for e in EventFileLoader(str(p)).Load()]
    tags = Counter(v.tag for e in events for v in e.summary.value)
    assert tags[metadata.SESSION_START_INFO_TAG] == tags[metadata.SESSION_END_INFO_TAG] == 1
