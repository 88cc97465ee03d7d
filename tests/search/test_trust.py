"""A study folder is data: resuming a handed folder unpickles nothing that this user did not sign. Ray's saved state
(which restoring a run unpickles) is signed as caesweep writes it; a planted pickle, a changed or missing
signature, another user's signature or a link make the run be rebuilt from plain data: finished trials kept, the
unfinished ones trained again from their first epoch, one line saying so."""

from __future__ import annotations

import json
import os
import pickle
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks.synthetic import synthetic_trainable
from results import trust
from search import commands
from search.options import SweepOptions
from search.ray_files import atomic_local, state_files, unsigned_state
from tests.conftest import read_study_table


class Planted:
    """What a hostile folder brings: a pickle whose loading creates a file (as os.system could do anything)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def signed_run(tmp_path: Path) -> Path:
    run = tmp_path / "run-1"
    (run / "trial_a").mkdir(parents=True)
    fs = atomic_local()
    for name in ("experiment_state-1.json", "tuner.pkl"):
        with fs.open_output_stream(str(run / name)) as stream:
            stream.write(b"{}" if name.endswith(".json") else pickle.dumps({"state": 1}))
    return run


def test_ray_state_is_signed_as_written_and_anything_else_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = signed_run(tmp_path)
    assert [p.name for p in state_files(run)] == ["experiment_state-1.json", "tuner.pkl"]
    assert unsigned_state(run) is None

    (run / "tuner.pkl").write_bytes(pickle.dumps(Planted(tmp_path / "ran")))  # the content changed
    assert unsigned_state(run) == "tuner.pkl's signature is not this user's"
    (run / "tuner.pkl.sig").unlink()
    assert unsigned_state(run) == "tuner.pkl.sig is missing or not a regular file"
    (run / "tuner.pkl").unlink()
    (run / "tuner.pkl").symlink_to(tmp_path / "elsewhere.pkl")
    assert unsigned_state(run) == "tuner.pkl is a link"
    (run / "tuner.pkl").unlink()
    (run / "trial_a" / "error.pkl").write_bytes(b"x")  # Ray unpickles a trial's error too
    assert unsigned_state(run) == "error.pkl.sig is missing or not a regular file"
    assert not (tmp_path / "ran").exists()  # nothing was unpickled to find out

    other = signed_run(tmp_path / "theirs")
    monkeypatch.setenv("CAESWEEP_CONFIG_DIR", str(tmp_path / "another-user"))
    assert unsigned_state(other) == "experiment_state-1.json's signature is not this user's"
    assert (tmp_path / "another-user" / "key").stat().st_mode & 0o777 == 0o600


def stop_after_first_trial(marker: Path, driver: int) -> Any:
    """Synthetic trials; once the first has finished, the second, at its second epoch, sends SIGTERM to the driver
    (once: ``marker``), so the study is interrupted with one trial finished and one running."""

    def hold(epoch: int) -> None:
        if epoch == 2 and marker.parent.joinpath("first-done").exists() and not marker.exists():
            marker.write_text("sent")
            os.kill(driver, signal.SIGTERM)
            time.sleep(0.5)
        if epoch == 3:
            marker.parent.joinpath("first-done").touch()

    return synthetic_trainable(checkpoints=True, before_epoch=hold)


@pytest.mark.slow
def test_a_planted_pickle_never_runs_and_the_study_still_ends_whole(
    tmp_path: Path, tiny_space: Path, private_ray, capsys: pytest.CaptureFixture[str]
) -> None:
    """An interrupted study is handed over with a pickle planted as Ray's tuner.pkl and in its experiment state:
    resume runs neither, says so in one line, keeps the finished trial as it was and trains the unfinished one
    again from its first epoch."""
    opts = SweepOptions(study="h1", space=str(tiny_space), root=str(tmp_path), samples=2, max_epochs=3, limit=16,
                        sampler="random", scheduler="none", concurrency=1, seed=1)
    trainable = stop_after_first_trial(tmp_path / "signal-sent", os.getpid())
    assert commands.run(opts, trainable=trainable) == 143
    folder, ran = tmp_path / "h1", tmp_path / "planted-pickle-ran"
    before = read_study_table(folder / "trials.csv").set_index("trial_id")
    assert sorted(before["status"]) == ["COMPLETE", "RUNNING"]
    run = folder / "ray" / "run-1"
    (run / "tuner.pkl").write_bytes(pickle.dumps(Planted(ran)))
    (state,) = sorted(run.glob("experiment_state-*.json"))[-1:]
    saved = json.loads(state.read_text())
    saved["runner_data"]["_planted"] = {"_type": "CLOUDPICKLE_FALLBACK", "value": pickle.dumps(Planted(ran)).hex()}
    state.write_text(json.dumps(saved))
    capsys.readouterr()

    assert commands.resume("h1", str(tmp_path), None, trainable=trainable) == 0
    out = capsys.readouterr().out
    assert not ran.exists()
    (line,) = [line for line in out.splitlines() if line.startswith("note: run-1 of study h1 is not restored")]
    assert "nothing of it is unpickled: its 1 ended trials are kept, its 1 unfinished ones start again" in line
    after = read_study_table(folder / "trials.csv").set_index("trial_id")
    assert len(after) == 2 and (after["status"] == "COMPLETE").all()
    done = before[before["status"] == "COMPLETE"]
    assert after.loc[done.index[0], "finished_at"] == done["finished_at"].iloc[0]  # kept, not trained again
    running = before[before["status"] == "RUNNING"].index[0]
    assert running not in after.index and list((folder / "ray").glob(f"_untrusted-run-1-*/trial_{running}"))
    history = read_study_table(folder / "history.csv")
    assert (history.groupby("trial_id").size() == 3).all()  # the retrained trial from its first epoch
    assert json.loads((folder / "study.json").read_text())["status"] == "done"
    assert trust.problem(run / "tuner.pkl") is not None  # the planted file is left, never trusted
