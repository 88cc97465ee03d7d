"""The progress view's lines: counts, the best so far, and a time-left estimate only while the run goes on."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from search.progress import LOG_FILE, ProgressView, logged_endings


def table(statuses: list[str]) -> pd.DataFrame:
    return pd.DataFrame({
        "trial_id": [f"t{i}" for i in range(len(statuses))],
        "status": statuses,
        "val_mse": [0.02 + 0.01 * i if s == "COMPLETE" else float("nan") for i, s in enumerate(statuses)],
        "architecture": ["8-16 k3 z16"] * len(statuses),
    })


def test_time_left_is_estimated_while_the_run_goes_on_and_not_in_its_last_line(tmp_path: Path) -> None:
    out = io.StringIO()
    view = ProgressView(tmp_path, target=10, metric="val_mse", mode="min", stream=out)
    view.update(table(["RUNNING", "RUNNING"]))
    running = table(["COMPLETE", "PRUNED", "RUNNING"])
    view.started -= 60  # a minute into the run: 2 of 10 finished
    assert view.line(running).endswith("elapsed, ~4m00s left")
    assert view.line(running).startswith("2/10 finished (1 complete, 1 pruned), 1 running | best val_mse 0.02 (")
    # The run ended short of its target (the space ran out, or a signal): no time left to estimate.
    ended = table(["COMPLETE", "PRUNED", "COMPLETE"])
    view.update(ended, final=True)
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("3/10 finished (2 complete, 1 pruned) | best val_mse 0.02 (") and last.endswith("elapsed")
    assert "left" not in last
    log = (tmp_path / LOG_FILE).read_text().splitlines()
    assert log[-1].endswith(last) and sum(" COMPLETE: " in line for line in log) == 2  # each trial logged once


def test_a_last_line_that_differs_only_in_its_time_is_not_shown_again(tmp_path: Path) -> None:
    # The run ended a second after its last update: its last line says nothing new, on the screen or in the log.
    out = io.StringIO()
    view = ProgressView(tmp_path, target=2, metric="val_mse", mode="min", stream=out)
    view.update(table(["COMPLETE", "COMPLETE"]))
    view.started -= 1
    view.update(table(["COMPLETE", "COMPLETE"]), final=True)
    logged = [line for line in (tmp_path / LOG_FILE).read_text().splitlines() if "finished" in line]
    assert len(out.getvalue().splitlines()) == len(logged) == 1
    # Ended short of its target after a line with a time-left estimate: the last line is shown, without one.
    out = io.StringIO()
    (tmp_path / "short").mkdir()
    view = ProgressView(tmp_path / "short", target=3, metric="val_mse", mode="min", stream=out)
    view.update(table(["RUNNING", "RUNNING"]))
    view.update(table(["COMPLETE", "RUNNING"]))
    view.started -= 1
    view.update(table(["COMPLETE", "RUNNING"]), final=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[1].endswith("left") and not lines[2].endswith("left")
    assert lines[2].split(" | ")[:2] == lines[1].split(" | ")[:2]


def test_a_trial_that_ends_again_differently_is_logged_again(tmp_path: Path) -> None:
    """A trial on a lost node is FAILED in the table until Ray retries it from its checkpoint; the log then says
    how it ended after all, and a trial is never logged twice with the same ending."""
    view = ProgressView(tmp_path, target=2, metric="val_mse", mode="min", stream=io.StringIO())
    lost = table(["FAILED", "RUNNING"])
    view.update(lost)
    view.update(lost)
    view.update(table(["RUNNING", "COMPLETE"]))  # retried: running again
    retried = table(["COMPLETE", "COMPLETE"])
    retried["error"] = ["the actor's node was terminated unexpectedly", float("nan")]  # as trials.csv reads back
    view.update(retried, final=True)
    logged = [line.split(" ", 1)[1] for line in (tmp_path / LOG_FILE).read_text().splitlines() if " trial " in line]
    assert [line.split(":")[0] for line in logged] == ["trial t0 FAILED", "trial t1 COMPLETE", "trial t0 COMPLETE"]
    assert logged[2].endswith("(retried after: the actor's node was terminated unexpectedly)")
    assert "nan" not in logged[1]  # no error: nothing in brackets


def test_a_resume_does_not_log_again_what_earlier_runs_logged(tmp_path: Path) -> None:
    """A resumed study's new view reads the log: trials an earlier run logged are not logged again (after a
    SIGKILL the tables can be older than the log, so the table alone cannot tell), one that ended differently
    since is, and a line that is not a trial's ending changes nothing."""
    first = ProgressView(tmp_path, target=4, metric="val_mse", mode="min", stream=io.StringIO())
    first.update(table(["COMPLETE", "FAILED", "RUNNING"]))
    with (tmp_path / LOG_FILE).open("a") as log:
        log.write("2026-11-27T05:00:00 trial t2 RUNNING: not an ending\n2026-11-27T05:00:01 trial t2\n")
    resumed = ProgressView(tmp_path, target=4, metric="val_mse", mode="min", stream=io.StringIO())
    resumed.update(table(["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED"]), final=True)
    lines = (tmp_path / LOG_FILE).read_text().splitlines()
    logged = [line.split(" ", 1)[1].split(":")[0] for line in lines if " trial " in line and ": " in line]
    assert logged == ["trial t0 COMPLETE", "trial t1 FAILED", "trial t2 RUNNING", "trial t1 COMPLETE",
                      "trial t2 COMPLETE", "trial t3 PRUNED"]


@pytest.mark.timeout(60)  # a FIFO opened for reading or appending the old way waits for ever: fail instead
def test_a_sweep_log_that_is_a_link_is_replaced_and_a_fifo_is_left_alone(tmp_path: Path) -> None:
    """A handed study's sweep.log may be a link to a file of the user's, or a FIFO with no other end: the view
    neither appends to the file the link points to nor waits on the FIFO."""
    victim = tmp_path / "home" / "notes.txt"
    victim.parent.mkdir()
    victim.write_text("2026-01-01T00:00:00 trial t0 COMPLETE: someone else's\n")
    before = victim.read_bytes()
    study = tmp_path / "study"
    study.mkdir()
    (study / LOG_FILE).symlink_to(victim)
    view = ProgressView(study, target=2, metric="val_mse", mode="min", stream=io.StringIO())
    assert logged_endings(study / LOG_FILE) == {}  # the link is not read either
    view.update(table(["COMPLETE", "RUNNING"]))
    assert victim.read_bytes() == before and not (study / LOG_FILE).is_symlink()
    assert "trial t0 COMPLETE" in (study / LOG_FILE).read_text()
    fifo = tmp_path / "fifo-study"
    fifo.mkdir()
    os.mkfifo(fifo / LOG_FILE)
    view = ProgressView(fifo, target=2, metric="val_mse", mode="min", stream=io.StringIO())
    view.update(table(["COMPLETE", "COMPLETE"]), final=True)
    assert stat.S_ISFIFO(os.lstat(fifo / LOG_FILE).st_mode)
