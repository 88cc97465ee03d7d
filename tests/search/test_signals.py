"""Real signals sent to real sweeps: SIGINT (Ctrl-C, to the whole process group as a terminal does) and SIGTERM
(to the driver, as SLURM and `timeout` do) stop a sweep gracefully, `study.json` says `interrupted`, and
`search resume` ends the study with exactly the requested trials, nothing trained twice; a second signal
stops at once and still leaves a resumable study; a signal while the final tables are written too."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import optuna
import pandas as pd
import pytest
import sqlalchemy.exc

from benchmarks.synthetic import synthetic_trainable
from tests.conftest import read_study_table
from tests.search.conftest import SYNTHETIC, search_cli, search_popen
from tests.search.test_sweep import check_agreement, completed, first_epoch_reported, optuna_trials, wait_for

pytestmark = pytest.mark.slow

COMMON = ("--max-epochs", "2", "--limit", "48", "--seed", "0", "--scheduler", "none")


def status(folder: Path) -> str:
    return json.loads((folder / "study.json").read_text())["status"]


def finished_before(folder: Path) -> pd.DataFrame:
    return completed(folder).set_index("trial_id")


def assert_kept(after: pd.DataFrame, before: pd.DataFrame) -> None:
    """Trials finished before the interruption are kept as they were: same result, same finishing time."""
    for tid, row in before.iterrows():
        assert after.loc[tid, "val_mse"] == pytest.approx(row["val_mse"])
        assert after.loc[tid, "finished_at"] == row["finished_at"]


def resume_to_the_end(root: Path, study: str, expected: int) -> pd.DataFrame:
    out = search_cli("resume", "--study", study, "--root", str(root), module=SYNTHETIC)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert status(root / study) == "done"
    trials = check_agreement(root, study, expected).set_index("trial_id")
    assert (trials["status"] == "COMPLETE").all()
    history = read_study_table(root / study / "history.csv")
    assert not history.duplicated(["trial_id", "epoch"]).any()
    assert (history.groupby("trial_id").size() == 2).all()  # every epoch once: nothing trained twice
    return trials


def test_ctrl_c_then_sigterm_then_a_double_ctrl_c_and_the_study_still_ends_whole(
    tmp_path: Path, tiny_space: Path
) -> None:
    """One study through three interruptions, each resumed: Ctrl-C at the first epoch with trials running and
    pending; SIGTERM to the driver once the resume has finished a trial; a double Ctrl-C once the next resume
    trains again. Each leaves an interrupted, resumable study; the last resume ends it with exactly the requested
    trials, every trial finished before an interruption kept as it was, nothing trained twice. The drivers are
    real ``python -m search`` processes whose trials report and checkpoint each epoch like real ones, half a
    second an epoch, without training (what is tested is the processes and their signals)."""
    samples = 8  # at the SIGTERM, a second after a trial finished, trials are left to do (2 run at a time)
    args = ("--space", str(tiny_space), "--study", "i1", "--root", str(tmp_path), "--samples", str(samples),
            "--concurrency", "2", *COMMON)
    log = tmp_path / "run.log"
    proc = search_popen("run", *args, log=log, module=SYNTHETIC)
    folder = tmp_path / "i1"
    wait_for(lambda: first_epoch_reported(folder), 240, proc)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground process group
    assert proc.wait(timeout=120) == 130
    out = log.read_text()
    assert status(folder) == "interrupted"
    line = next(line for line in out.splitlines() if line.startswith("interrupted: "))
    assert line.endswith(f"pending; continue with: python -m search resume --study i1 --root {tmp_path}")
    counts = read_study_table(folder / "trials.csv")["status"].value_counts().to_dict()
    assert counts.get("RUNNING", 0) >= 1 and f"{counts.get('RUNNING', 0)} running" in line
    assert "Tuner.restore" not in out and "no trial finished" not in out and "Traceback" not in out
    at_ctrl_c = finished_before(folder)

    # Resume; SIGTERM to the driver only (SLURM's or Kubernetes' first signal) once it has finished a trial. Seen in
    # the Optuna storage, which the driver writes in the same Tune step that ends the trial (the tables are
    # rewritten at most every 2 s; a trial's last line in Ray's result.json comes before its function has returned,
    # and a stop in between rightly leaves that trial RUNNING).
    ended = _told_complete(tmp_path, "i1")
    proc = search_popen("resume", "--study", "i1", "--root", str(tmp_path), log=tmp_path / "resume1.log",
                        module=SYNTHETIC)
    wait_for(lambda: _told_complete(tmp_path, "i1") > ended, 240, proc)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    assert status(folder) == "interrupted"
    at_sigterm = finished_before(folder)
    assert len(at_ctrl_c) < len(at_sigterm) < samples

    # Resume again, then Ctrl-C twice in a row once it trains again: it stops at once, still resumable.
    reported = _reports(folder)
    proc = search_popen("resume", "--study", "i1", "--root", str(tmp_path), log=tmp_path / "resume2.log",
                        module=SYNTHETIC)
    wait_for(lambda: _reports(folder) > reported, 240, proc)  # an epoch trained by this resume
    os.killpg(proc.pid, signal.SIGINT)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    assert status(folder) == "interrupted"
    assert "Traceback" not in (tmp_path / "resume1.log").read_text() + (tmp_path / "resume2.log").read_text()
    trials = resume_to_the_end(tmp_path, "i1", samples)
    assert_kept(trials, at_ctrl_c)
    assert_kept(trials, at_sigterm)


def _told_complete(root: Path, study: str) -> int:
    """Trials the driver has told Optuna are complete (-1 while the storage is busy being written)."""
    try:
        return sum(t.state == optuna.trial.TrialState.COMPLETE for t in optuna_trials(root, study))
    except sqlalchemy.exc.OperationalError:  # "database is locked": the driver is writing; ask again
        return -1


def _reports(folder: Path) -> int:
    """Results Ray has logged so far, over every trial (one line per report)."""
    return sum(len(f.read_text().splitlines()) for f in folder.glob("ray/run-*/trial_*/result.json"))


def test_a_signal_while_the_final_tables_are_written(
    tmp_path: Path, tiny_space: Path, monkeypatch: pytest.MonkeyPatch, private_ray
) -> None:
    """SIGTERM arrives, for real, in the middle of the last table rebuild: the tables still come out whole, the
    study says interrupted, and resume finishes it without training anything again (synthetic trials: what is
    tested is the tables' last write)."""
    import results
    from search import commands, ray_engine
    from search.options import SweepOptions

    real_finish, real_write = ray_engine.finish, results.write_tables
    finishing: list[bool] = []

    def finish(*args, **kwargs):
        finishing.append(True)
        return real_finish(*args, **kwargs)

    def write_tables(*args, **kwargs):
        if finishing and len(finishing) == 1:
            finishing.append(True)
            os.kill(os.getpid(), signal.SIGTERM)  # delivered while this write is under way
        return real_write(*args, **kwargs)

    monkeypatch.setattr(ray_engine, "finish", finish)
    monkeypatch.setattr(results, "write_tables", write_tables)
    opts = SweepOptions(study="f1", space=str(tiny_space), root=str(tmp_path), samples=3, max_epochs=2, limit=48,
                        scheduler="none", concurrency=1)
    assert commands.run(opts, trainable=synthetic_trainable(checkpoints=True)) == 143
    folder = tmp_path / "f1"
    assert status(folder) == "interrupted"
    trials = read_study_table(folder / "trials.csv")
    assert len(trials) == 3 and (trials["status"] == "COMPLETE").all()
    monkeypatch.undo()
    before = finished_before(folder)
    assert_kept(resume_to_the_end(tmp_path, "f1", 3), before)
