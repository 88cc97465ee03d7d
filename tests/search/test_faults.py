"""Faults during a sweep lose nothing: a diverging or crashing trial is a FAILED row and the sweep goes on,
a study where every trial fails exits non-zero with its reasons, and a killed trial worker is retried from
its last epoch checkpoint."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pytest

from cae.errors import UsageError
from search import commands
from search.interrupt import Interrupted, interruption_in
from search.options import SweepOptions
from search.trial import run_trial
from tests.conftest import read_study_table
from tests.search.conftest import search_popen, sweep_env

pytestmark = pytest.mark.slow


def poisoned_when_latent_4(config: dict, data, settings) -> None:
    """The real trial, but trials with latent_dim 4 get NaN pixels: their loss really diverges."""
    if config["latent_dim"] == 4:
        data = replace(data, train=np.full_like(data.train, np.nan))
    run_trial(config, data, settings)


def crashing(config: dict, data, settings) -> None:
    """A trial whose code raises before training."""
    raise RuntimeError(f"no GPU driver for {config['filters']}")


@pytest.fixture
def in_process_ray(monkeypatch: pytest.MonkeyPatch):
    for key, value in sweep_env().items():
        if key.startswith("RAY_"):
            monkeypatch.setenv(key, value)
    yield
    import ray

    ray.shutdown()


def options(tmp_path: Path, space: Path, study: str, samples: int, max_failures: int = 2) -> SweepOptions:
    return SweepOptions(study=study, space=str(space), root=str(tmp_path), samples=samples, max_epochs=2,
                        limit=48, scheduler="none", sampler="random", seed=3, concurrency=1,
                        max_failures=max_failures)


def test_diverging_trials_are_failed_rows_and_the_sweep_goes_on(
    tmp_path: Path, tiny_space: Path, in_process_ray, capsys: pytest.CaptureFixture
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
    tmp_path: Path, tiny_space: Path, in_process_ray, capsys: pytest.CaptureFixture
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


SLOW_SPACE = """\
samples: 1
fixed: {task: reconstruct, data: embedded, image_size: 32, max_epochs: 4, batch_size: 32, kernel_size: 3,
        filters: "16-32", latent_dim: 32, lr: 1.0e-3}
params:
  loss: {choices: [mse], role: scientific}
"""


def test_killed_trial_worker_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    space = tmp_path / "slow.yaml"
    space.write_text(SLOW_SPACE)
    proc = search_popen("run", "--space", str(space), "--study", "w1", "--root", str(tmp_path), "--limit", "800",
                        "--scheduler", "none", log=tmp_path / "run.log")
    results_file = None
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "w1" / "ray").glob("run-1/trial_*/result.json"))
        # Two epochs reported: the driver writes a result line before it registers that epoch's checkpoint (a
        # later event of its loop), so a kill right after epoch 1's line could find no checkpoint yet; by
        # epoch 2's line, seconds of training later, epoch 1's is registered.
        if found and len(found[0].read_text().splitlines()) >= 2:
            results_file = found[0]
            break
        time.sleep(0.2)
    assert results_file is not None, (tmp_path / "run.log").read_text()[-3000:]
    first = json.loads(results_file.read_text().splitlines()[0])
    os.kill(first["pid"], signal.SIGKILL)  # the worker process training the trial, mid-epoch 3
    assert proc.wait(timeout=300) == 0, (tmp_path / "run.log").read_text()[-3000:]

    lines = [json.loads(line) for line in results_file.read_text().splitlines()]
    epochs = [line["epoch"] for line in lines]
    assert epochs[0] == 1 and epochs[-1] == 4 and 1 not in epochs[1:], epochs  # continued, not restarted
    assert len({line["pid"] for line in lines}) == 2  # a new worker took over
    trials = read_study_table(tmp_path / "w1" / "trials.csv")
    assert list(trials["status"]) == ["COMPLETE"] and trials.loc[0, "epochs"] == 4
    history = read_study_table(tmp_path / "w1" / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4]


def test_a_failure_of_ray_itself_marks_the_study_failed_and_it_resumes(
    tmp_path: Path, tiny_space: Path, in_process_ray, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture
) -> None:
    """Ray raising out of ``Tuner.fit`` (a lost head node, say): before any trial the new folder is removed and
    the name is free; after some trials the study is ``failed`` with the reason, and ``resume`` finishes it."""
    from ray import tune

    real_fit = tune.Tuner.fit

    def lost_before_any_trial(self):
        raise RuntimeError("the Ray head node went away")

    monkeypatch.setattr(tune.Tuner, "fit", lost_before_any_trial)
    assert commands.run(options(tmp_path, tiny_space, "lost0", 2)) == 1
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
    assert commands.run(options(tmp_path, tiny_space, "lost1", 2)) == 1
    meta = json.loads((tmp_path / "lost1" / "study.json").read_text())
    assert meta["status"] == "failed" and meta["failure"] == "RuntimeError: the Ray head node went away"
    assert "lost_after_the_run" in (tmp_path / "lost1" / "failure.log").read_text()
    monkeypatch.setattr(tune.Tuner, "fit", real_fit)
    assert commands.resume("lost1", str(tmp_path), None) == 0
    meta = json.loads((tmp_path / "lost1" / "study.json").read_text())
    assert meta["status"] == "done" and meta["failure"] is None
    trials = read_study_table(tmp_path / "lost1" / "trials.csv")
    assert len(trials) == 2 and (trials["status"] == "COMPLETE").all()


def test_a_second_signal_that_ray_wraps_still_interrupts(
    tmp_path: Path, tiny_space: Path, in_process_ray, monkeypatch: pytest.MonkeyPatch,
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
