"""Real signals sent to real sweeps: SIGINT (Ctrl-C, to the whole process group as a terminal does) and SIGTERM
(to the driver, as SLURM and `timeout` do) stop a sweep gracefully, `study.json` says `interrupted`, and
`search resume` ends the study with exactly the requested trials, nothing trained twice; a second signal
stops at once and still leaves a resumable study; a signal while the final tables are written too."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import read_study_table
from tests.search.conftest import search_cli, search_popen
from tests.search.test_sweep import check_agreement, completed, first_epoch_reported, wait_for

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
    out = search_cli("resume", "--study", study, "--root", str(root))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert status(root / study) == "done"
    trials = check_agreement(root, study, expected).set_index("trial_id")
    assert (trials["status"] == "COMPLETE").all()
    history = read_study_table(root / study / "history.csv")
    assert not history.duplicated(["trial_id", "epoch"]).any()
    assert (history.groupby("trial_id").size() == 2).all()  # every epoch once: nothing trained twice
    return trials


def test_ctrl_c_at_the_first_epoch_with_trials_running_and_pending(tmp_path: Path, tiny_space: Path) -> None:
    args = ("--space", str(tiny_space), "--study", "i1", "--root", str(tmp_path), "--samples", "4",
            "--concurrency", "2", *COMMON)
    log = tmp_path / "run.log"
    proc = search_popen("run", *args, log=log)
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
    before = finished_before(folder)
    assert_kept(resume_to_the_end(tmp_path, "i1", 4), before)


def test_sigterm_then_a_double_ctrl_c_during_resume(tmp_path: Path, tiny_space: Path) -> None:
    args = ("--space", str(tiny_space), "--study", "t1", "--root", str(tmp_path), "--samples", "4",
            "--concurrency", "1", *COMMON)
    folder = tmp_path / "t1"
    proc = search_popen("run", *args, log=tmp_path / "run.log")
    wait_for(lambda: len(completed(folder)) >= 1, 240, proc)
    os.kill(proc.pid, signal.SIGTERM)  # the driver only, as SLURM's or Kubernetes' first signal
    assert proc.wait(timeout=120) == 143
    assert status(folder) == "interrupted"
    first = finished_before(folder)
    assert 1 <= len(first) < 4

    # Resume, then Ctrl-C twice in a row once it trains again: it stops at once, still resumable.
    reported = _reports(folder)
    proc = search_popen("resume", "--study", "t1", "--root", str(tmp_path), log=tmp_path / "resume.log")
    wait_for(lambda: _reports(folder) > reported, 240, proc)  # an epoch trained by the resumed sweep
    os.killpg(proc.pid, signal.SIGINT)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    assert status(folder) == "interrupted"
    assert "Traceback" not in (tmp_path / "resume.log").read_text()
    assert_kept(resume_to_the_end(tmp_path, "t1", 4), first)


def _reports(folder: Path) -> int:
    """Results Ray has logged so far, over every trial (one line per report)."""
    return sum(len(f.read_text().splitlines()) for f in folder.glob("ray/run-*/trial_*/result.json"))


def test_a_signal_while_the_final_tables_are_written(
    tmp_path: Path, tiny_space: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM arrives, for real, in the middle of the last table rebuild: the tables still come out whole, the
    study says interrupted, and resume finishes it without training anything again."""
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
    assert commands.run(opts) == 143
    folder = tmp_path / "f1"
    assert status(folder) == "interrupted"
    trials = read_study_table(folder / "trials.csv")
    assert len(trials) == 3 and (trials["status"] == "COMPLETE").all()
    monkeypatch.undo()
    before = finished_before(folder)
    assert_kept(resume_to_the_end(tmp_path, "f1", 3), before)
