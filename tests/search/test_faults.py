"""Faults during a sweep lose nothing: a diverging or crashing trial is a FAILED row and the sweep goes on,
a study where every trial fails exits non-zero with its reasons, and a killed trial worker is retried from
its last epoch checkpoint."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pytest

from benchmarks.synthetic import synthetic_trainable
from cae.errors import UsageError
from search import commands
from search.interrupt import Interrupted, interruption_in
from search.options import SweepOptions
from search.trial import run_trial
from tests.conftest import read_study_table

pytestmark = pytest.mark.slow


def poisoned_when_latent_4(config: dict, data, settings) -> None:
    """The real trial, but trials with latent_dim 4 get NaN pixels: their loss really diverges."""
    if config["latent_dim"] == 4:
        data = replace(data, train=np.full_like(data.train, np.nan))
    run_trial(config, data, settings)


def crashing(config: dict, data, settings) -> None:
    """A trial whose code raises before training."""
    raise RuntimeError(f"no GPU driver for {config['filters']}")


def options(tmp_path: Path, space: Path, study: str, samples: int, max_failures: int = 2) -> SweepOptions:
    return SweepOptions(study=study, space=str(space), root=str(tmp_path), samples=samples, max_epochs=2,
                        limit=48, scheduler="none", sampler="random", seed=3, concurrency=1,
                        max_failures=max_failures)


def test_diverging_trials_are_failed_rows_and_the_sweep_goes_on(
    tmp_path: Path, tiny_space: Path, private_ray, capsys: pytest.CaptureFixture
) -> None:
    code = commands.run(options(tmp_path, tiny_space, "nan1", 6), trainable=poisoned_when_latent_4)
    trials = read_study_table(tmp_path / "nan1" / "trials.csv")
    assert len(trials) == 6
    poisoned = trials["latent_dim"] == 4
    assert poisoned.any() and (~poisoned).any(), "the seed must draw both latent sizes"
    assert (trials.loc[poisoned, "status"] == "FAILED").all()
    assert trials.loc[poisoned, "error"].str.contains("diverged").all()
    assert (trials.loc[~poisoned, "status"] == "COMPLETE").all()
    assert code == 0
    study = optuna.load_study(study_name="nan1", storage=f"sqlite:///{tmp_path / 'nan1' / 'optuna.db'}")
    trained = [t for t in study.trials if "duplicate_of" not in t.user_attrs]  # repeated proposals: never trained
    failed = [t for t in trained if t.state.name == "FAIL"]
    assert len(trained) == 6 and len(failed) == poisoned.sum()  # the sampler was told
    assert all("diverged" in t.user_attrs["fail_reason"] for t in failed)


def test_a_study_where_every_trial_fails_exits_non_zero(
    tmp_path: Path, tiny_space: Path, private_ray, capsys: pytest.CaptureFixture
) -> None:
    # No retries: Ray would start a new worker process for each of 2 retries of every trial (a raising trainable's
    # actor is not reused), 9 worker starts for 3 failed rows.
    code = commands.run(options(tmp_path, tiny_space, "crash1", 3, max_failures=0), trainable=crashing)
    out = capsys.readouterr().out
    assert code == 1
    assert "no trial finished" in out and "RuntimeError: no GPU driver" in out
    trials = read_study_table(tmp_path / "crash1" / "trials.csv")
    assert len(trials) == 3 and (trials["status"] == "FAILED").all()
    assert json.loads((tmp_path / "crash1" / "study.json").read_text())["status"] == "failed"
    before = {p: p.read_bytes() for p in (tmp_path / "crash1").rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(UsageError, match="has no finished trial to confirm"):
        commands.confirm("crash1", str(tmp_path), 2, 2)
    assert {p: p.read_bytes() for p in before} == before


def held_at_epoch_3(pid_file: Path):
    """The synthetic trainable (checkpointing each epoch), except that the first worker to reach epoch 3 writes its
    pid and waits there to be killed: the kill lands mid-trial by construction, once epoch 1's checkpoint is
    registered (the worker's second report returned only after the driver had taken in its first)."""

    def hold(epoch: int) -> None:
        if epoch == 3 and not pid_file.exists():
            pid_file.write_text(str(os.getpid()))
            time.sleep(300)

    return synthetic_trainable(checkpoints=True, before_epoch=hold)


def test_killed_trial_worker_resumes_from_its_checkpoint(tmp_path: Path, tiny_space: Path, private_ray) -> None:
    """SIGKILL of the worker process training a trial in its third epoch: Ray retries the trial
    (``--max-failures``) in a new worker, which continues from its last registered checkpoint (epoch 1 or 2), not
    from epoch 1. (The trainable reports like a real trial and checkpoints each epoch; a real trial's own restore
    from its checkpoint is what the killed-driver test checks, epoch by epoch.)"""
    pid_file = tmp_path / "held.pid"
    opts = replace(options(tmp_path, tiny_space, "w1", 1), max_epochs=4)
    killer = threading.Thread(target=_kill_when_written, args=(pid_file,), daemon=True)
    killer.start()
    assert commands.run(opts, trainable=held_at_epoch_3(pid_file)) == 0
    killer.join(timeout=5)

    (results_file,) = (tmp_path / "w1" / "ray").glob("run-1/trial_*/result.json")
    lines = [json.loads(line) for line in results_file.read_text().splitlines()]
    epochs = [line["epoch"] for line in lines]
    assert epochs[:2] == [1, 2] and epochs[-1] == 4 and 1 not in epochs[1:], epochs  # continued, not restarted
    assert len({line["pid"] for line in lines}) == 2 and lines[0]["pid"] == int(pid_file.read_text())
    trials = read_study_table(tmp_path / "w1" / "trials.csv")
    assert list(trials["status"]) == ["COMPLETE"] and trials.loc[0, "epochs"] == 4
    history = read_study_table(tmp_path / "w1" / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4]


def _kill_when_written(pid_file: Path) -> None:
    deadline = time.time() + 240
    while time.time() < deadline:
        if pid_file.exists() and pid_file.read_text():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
            return
        time.sleep(0.1)


def test_a_failure_of_ray_itself_marks_the_study_failed_and_it_resumes(
    tmp_path: Path, tiny_space: Path, private_ray, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture
) -> None:
    """Ray raising out of ``Tuner.fit`` (a lost head node, say): before any trial the new folder is removed and
    the name is free; after some trials the study is ``failed`` with the reason, and ``resume`` finishes it.
    (What the trials compute plays no part: they report a known loss and train nothing.)"""
    from ray import tune

    trainable = synthetic_trainable()

    real_fit = tune.Tuner.fit

    def lost_before_any_trial(self):
        raise RuntimeError("the Ray head node went away")

    monkeypatch.setattr(tune.Tuner, "fit", lost_before_any_trial)
    assert commands.run(options(tmp_path, tiny_space, "lost0", 2), trainable=trainable) == 1
    assert not (tmp_path / "lost0").exists()
    err = capsys.readouterr().err
    assert "error: the sweep failed: RuntimeError: the Ray head node went away" in err and "name is free" in err
    # The traceback outlives the folder: kept beside it, where the message says.
    log = tmp_path / "lost0.failure.log"
    assert f"(traceback in {log}; no trial had started, so the study folder {tmp_path / 'lost0'} is removed" in err
    assert "lost_before_any_trial" in log.read_text() and "resumable" not in err

    def lost_after_the_run(self):
        real_fit(self)
        raise RuntimeError("the Ray head node went away")

    monkeypatch.setattr(tune.Tuner, "fit", lost_after_the_run)
    assert commands.run(options(tmp_path, tiny_space, "lost1", 2), trainable=trainable) == 1
    meta = json.loads((tmp_path / "lost1" / "study.json").read_text())
    assert meta["status"] == "failed" and meta["failure"] == "RuntimeError: the Ray head node went away"
    assert "lost_after_the_run" in (tmp_path / "lost1" / "failure.log").read_text()
    monkeypatch.setattr(tune.Tuner, "fit", real_fit)
    assert commands.resume("lost1", str(tmp_path), None, trainable=trainable) == 0
    meta = json.loads((tmp_path / "lost1" / "study.json").read_text())
    assert meta["status"] == "done" and meta["failure"] is None
    trials = read_study_table(tmp_path / "lost1" / "trials.csv")
    assert len(trials) == 2 and (trials["status"] == "COMPLETE").all()


def test_a_second_signal_that_ray_wraps_still_interrupts(
    tmp_path: Path, tiny_space: Path, private_ray, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture
) -> None:
    """A second Ctrl-C handled while the driver waits inside Ray's C extension comes out of ``Tuner.fit`` as a
    SystemError caused by the Interrupted (seen in a full-suite run): the study is interrupted (exit 130,
    resumable), not failed."""
    from ray import tune

    def second_signal_inside_ray_wait(self):
        try:
            raise Interrupted(signal.SIGINT)
        except Interrupted as exc:
            raise SystemError("<cyfunction CoreWorker.wait> returned a result with an exception set") from exc

    monkeypatch.setattr(tune.Tuner, "fit", second_signal_inside_ray_wait)
    assert commands.run(options(tmp_path, tiny_space, "wrapped", 2)) == 130
    meta = json.loads((tmp_path / "wrapped" / "study.json").read_text())
    assert meta["status"] == "interrupted" and meta["failure"] is None
    err = capsys.readouterr().err
    assert "interrupted; continue with: python -m search resume --study wrapped" in err and "failed" not in err


def test_the_interruption_is_found_behind_the_exceptions_it_caused() -> None:
    second = Interrupted(signal.SIGTERM)
    try:
        try:
            raise second
        except Interrupted as exc:
            raise SystemError("wrapped") from exc
    except SystemError as wrapped:
        assert interruption_in(wrapped) is second
    assert interruption_in(second) is second
    assert interruption_in(RuntimeError("the Ray head node went away")) is None
