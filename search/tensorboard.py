"""TensorBoard logs of a trial, written from inside the trial: per-epoch curves and an HParams summary.

Each trial is one TensorBoard run laid out the way Keras's own ``TensorBoard`` callback lays it out, so
``tensorboard --logdir <study>/tensorboard`` overlays train and validation curves as Keras users expect::

    tensorboard/<trial_id>/              the HParams session: hyperparameters (step 0), final scores (last epoch)
    tensorboard/<trial_id>/train/        epoch_loss, epoch_mse, epoch_psnr, epoch_ssim, epoch_seconds
    tensorboard/<trial_id>/validation/   epoch_loss, epoch_mse, epoch_native_mse, epoch_psnr, epoch_ssim

A ``history.csv`` column ``val_X`` is the tag ``epoch_X`` of ``validation/``, any other column ``X`` is
``epoch_X`` of ``train/``; the step is the 1-based epoch, as in ``history.csv``.

The events are protocol buffers written with TensorBoard's own record writer: no TensorFlow summary ops, no
background writer thread, nothing left open between epochs (each epoch appends to the process's event file
and closes it), so a reused Ray worker leaks no file and a killed one loses at most the epoch being written.
A resumed trial first drops the events of epochs after the checkpoint it resumes from (they were logged by
a process that died before checkpointing them, and are trained again), so no step is ever logged twice.
"""

from __future__ import annotations

import io
import math
import os
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

import results

TRAIN, VALIDATION = "train", "validation"  # Keras's sub-run names
VAL_PREFIX = "val_"
TAG_PREFIX = "epoch_"  # Keras's tag prefix for per-epoch scalars
NOT_LOGGED = ("epoch",)  # history columns that are the step, not a scalar
# The final scores a trial's HParams session shows (whichever the caller passes): the kept epoch's
# validation scores, its test scores and baselines' skill, and its cost.
FINAL_METRICS = (
    "val_mse", "val_psnr", "val_ssim", "test_mse", "test_psnr", "test_ssim", "skill", "skill_pca", "params",
    "epochs", "best_epoch", "train_seconds",
)
_EVENTS = "events.out.tfevents"  # TensorBoard reads files whose names contain "tfevents"


def tag_for(column: str) -> tuple[str, str]:
    """The (sub-run, tag) a ``history.csv`` column is logged under: ``val_mse`` -> (validation, epoch_mse)."""
    if column.startswith(VAL_PREFIX):
        return VALIDATION, TAG_PREFIX + column.removeprefix(VAL_PREFIX)
    return TRAIN, TAG_PREFIX + column


class EpochLogger:
    """A ``cae.training.train`` epoch hook that logs the epoch's record to TensorBoard.

    ``log_dir`` is the trial's run folder (``results.StudyPaths.tensorboard_run(trial_id)``); ``hparams``
    are the trial's hyperparameters, written as its HParams session when the trial starts, so trials that
    are pruned or still running appear in the HParams table too (with their last logged values).
    """

    def __init__(self, log_dir: str | os.PathLike[str], trial_id: str, hparams: Mapping[str, Any]) -> None:
        self.folder = Path(log_dir)
        self.trial_id = trial_id
        self.hparams = hparams
        self._runs: dict[str, _Run] = {}

    def __call__(self, state: Any) -> None:
        """Append the epoch's scalars; on this process's first epoch, drop what a resume trains again."""
        if not self._runs:
            self._start(first_epoch=state.epoch)
        by_run: dict[str, list[Any]] = {TRAIN: [], VALIDATION: []}
        for column, value in state.record.items():
            if column not in NOT_LOGGED and _is_number(value):
                run, tag = tag_for(column)
                by_run[run].append(_scalar(tag, float(value)))
        wall = time.time()
        for run, values in by_run.items():
            if values:
                self._runs[run].append([_event(state.epoch, wall, summary=values)])

    def _start(self, first_epoch: int) -> None:
        within = self.folder.parent.parent  # <study>/tensorboard/<trial_id>
        self._runs = {name: _Run(self.folder / name, within) for name in (TRAIN, VALIDATION)}
        for run in self._runs.values():
            run.keep_through(first_epoch - 1)
        session = _Run(self.folder, self.folder.parent.parent)
        if not session.files():
            session.append([_event(0, time.time(), summary=[_session_start(self.trial_id, self.hparams)])])


def write_final(
    log_dir: str | os.PathLike[str], trial_id: str, hparams: Mapping[str, Any], metrics: Mapping[str, Any],
    step: int,
) -> None:
    """Close a finished trial's HParams session: its hyperparameters, final scores and a success status.

    ``metrics`` may hold anything; the finite numbers among :data:`FINAL_METRICS` are logged at ``step``
    (the trial's last epoch). The session's events are rewritten whole, so calling this again (a trial whose
    final report is repeated after a restart) leaves one copy, not two.
    """
    now = time.time()
    session = _Run(Path(log_dir), Path(log_dir).parent.parent)
    old = session.files()
    finals = [_scalar(name, float(metrics[name])) for name in FINAL_METRICS if _is_number(metrics.get(name))]
    session.append([
        _event(0, now, summary=[_session_start(trial_id, hparams)]),
        _event(step, now, summary=finals),
        _event(step, now, summary=[_session_end(now)]),
    ])
    for path in old:
        path.unlink(missing_ok=True)


class _Run:
    """One TensorBoard run folder and the event file this process appends to."""

    def __init__(self, folder: Path, within: Path) -> None:
        self.folder = folder
        self.within = within  # the study folder: no link is followed from it down to the event file
        # Seconds first (TensorBoard reads a run's files in name order); nanoseconds keep two files of one
        # process apart.
        now = time.time_ns()
        self.path = folder / f"{_EVENTS}.{now // 10**9:010d}.{socket.gethostname()}.{os.getpid()}.{now}"
        self._started = False

    def files(self) -> list[Path]:
        """The run's event files, oldest first (TensorBoard's own order: by name)."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.is_file() and _EVENTS in p.name)

    def keep_through(self, step: int) -> None:
        """Drop every event after ``step``: rewrite the kept ones into this process's file, remove the old."""
        old = [p for p in self.files() if p != self.path]
        events = [e for path in old for e in _read(path)]
        if not any(e.step > step for e in events if e.HasField("summary")):
            return
        self.append([e for e in events if e.HasField("summary") and e.step <= step])
        for path in old:
            path.unlink()

    def append(self, events: Iterable[Any]) -> None:
        """Append ``events`` to this process's file (opened and closed here; the first write adds the
        file-version header every event file starts with)."""
        from tensorboard.summary.writer.record_writer import RecordWriter

        buffer = io.BytesIO()
        writer = RecordWriter(buffer)
        if not self._started:
            writer.write(_event(0, time.time(), file_version="brain.Event:2").SerializeToString())
            self._started = True
        for event in events:
            writer.write(event.SerializeToString())
        # One append, through no link from the study folder down (results.files).
        results.append_bytes(self.path, buffer.getvalue(), self.within)


def _read(path: Path) -> list[Any]:
    """The events of one file as written (the legacy loader does not convert them to tensor summaries)."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    return list(LegacyEventFileLoader(str(path)).Load())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _event(step: int, wall_time: float, summary: list[Any] | None = None, file_version: str | None = None) -> Any:
    from tensorboard.compat.proto import event_pb2, summary_pb2

    event = event_pb2.Event(step=step, wall_time=wall_time)
    if file_version is not None:
        event.file_version = file_version
    if summary is not None:
        event.summary.CopyFrom(summary_pb2.Summary(value=summary))
    return event


def _scalar(tag: str, value: float) -> Any:
    from tensorboard.compat.proto import summary_pb2

    return summary_pb2.Summary.Value(tag=tag, simple_value=value)


def _session_start(trial_id: str, hparams: Mapping[str, Any]) -> Any:
    """The HParams plugin's session-start summary value (hyperparameters as bool, number or text)."""
    from tensorboard.plugins.hparams import summary_v2

    return summary_v2.hparams_pb(_hparam_values(hparams), trial_id=trial_id).value[0]


def _session_end(end_time: float) -> Any:
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData(
        session_end_info=plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=end_time)
    )
    return summary_pb2.Summary.Value(
        tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR
    )


def _hparam_values(hparams: Mapping[str, Any]) -> dict[str, bool | float | str]:
    """HParams take bools, numbers and text: NumPy scalars become Python ones, other values their text,
    unset (None) values are left out."""
    out: dict[str, bool | float | str] = {}
    for name, value in hparams.items():
        value = value.item() if isinstance(value, np.generic) else value
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = value
        elif isinstance(value, (int, float)):
            out[name] = float(value)
        else:
            out[name] = str(value)
    return out
