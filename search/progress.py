"""A terse live view of a sweep: counts, the best value so far, elapsed time and an estimate of the time left.

On a terminal it is one line rewritten in place; otherwise (CI logs, ``> file``) it prints a line when the
counts change, and at most every ``interval`` seconds otherwise. Each line also goes, with a timestamp, to the
study's ``sweep.log``, together with one line per finished trial (its configuration and result), so the
per-trial detail Ray's tables used to scroll past stays on record. ``--verbose`` shows Ray's own tables too.

It reads the study's trial table (the engines rebuild it as results arrive), so it is the same for the Ray and
the keras-tuner engine, and for a resumed study it counts what earlier runs finished; the trials they logged are
not logged again (the log says which: a resume after a SIGKILL finds the tables older than the log).
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

import results
from cae.errors import StudyError

LOG_FILE = "sweep.log"
# The largest sweep.log read back on resume: a line is ~100-200 bytes, a few per trial; beyond this the earlier
# runs' trials are logged again rather than the log read whole.
MAX_LOG_BYTES = 64 * 2**20
ENDINGS = (results.COMPLETE, results.PRUNED, results.FAILED)


def _unclocked(line: str) -> str:
    """A progress line without its elapsed time."""
    return re.sub(r"\S+ elapsed", "elapsed", line)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class ProgressView:
    """Shows the state of one sweep; feed it the trial table with :meth:`update`."""

    def __init__(
        self, folder: Path, target: int, metric: str, mode: str, stream: TextIO | None = None,
        interval: float = 30.0, select: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    ) -> None:
        self.log_path = folder / LOG_FILE
        self.target = target
        self.metric = metric
        self.mode = mode
        self._stream = stream  # None: sys.stdout when writing (Tune pickles its callbacks, and this view with them)
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self.select = select  # the rows this view counts (a confirm run counts its repeats only)
        self.started = time.monotonic()
        self._last_line = ""
        self._last_printed = 0.0
        self._printed = ""
        self._logged_line = ""  # the last progress line appended to the log
        # trial id -> the ended status its last log line gave; a resumed study's earlier runs logged theirs
        self._logged: dict[str, str] = logged_endings(self.log_path)
        self._finished_at_start: int | None = None

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stdout

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_stream": None}

    def line(self, trials: pd.DataFrame, final: bool = False) -> str:
        """``7/20 finished (5 complete, 1 pruned, 1 failed), 2 running | best val_mse 0.0123 (32-48-64 k3 z128) |
        3m12s elapsed, ~6m left``; ``final``: the run has ended (interrupted, or the space ran out), so no time is
        left to estimate."""
        counts = trials["status"].value_counts().to_dict() if len(trials) else {}
        ended = {s: counts.get(s, 0) for s in ENDINGS}
        finished = sum(ended.values())
        if self._finished_at_start is None:
            self._finished_at_start = finished  # what earlier runs finished: not part of this run's pace
        parts = ", ".join(f"{n} {s.lower()}" for s, n in ended.items() if n)
        text = f"{finished}/{self.target} finished" + (f" ({parts})" if parts else "")
        running = counts.get(results.RUNNING, 0)
        if running:
            text += f", {running} running"
        done = trials[trials["status"] == results.COMPLETE] if len(trials) else trials
        if len(done) and self.metric in done and done[self.metric].notna().any():
            values = done[self.metric].astype(float)
            best = done.loc[values.idxmin() if self.mode == "min" else values.idxmax()]
            text += f" | best {self.metric} {float(best[self.metric]):.4g}"
            if isinstance(best.get("architecture"), str):
                text += f" ({best['architecture']})"
        elapsed = time.monotonic() - self.started
        text += f" | {_duration(elapsed)} elapsed"
        new = finished - self._finished_at_start
        if new > 0 and finished < self.target and not final:
            text += f", ~{_duration(elapsed / new * (self.target - finished))} left"
        return text

    def update(self, trials: pd.DataFrame, final: bool = False) -> None:
        """Show the table's state (rate-limited off a terminal) and log newly finished trials; ``final``: the
        run's last line (shown whatever the rate, with no time left to estimate)."""
        if self.select is not None:
            trials = self.select(trials)
        self._log_finished(trials)
        line = self.line(trials, final=final)
        now = time.monotonic()
        changed = line.split(" | ")[0] != self._last_line.split(" | ")[0]
        if self.tty:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
        elif (_unclocked(line) != _unclocked(self._printed) if final else
              line != self._printed and (changed or now - self._last_printed >= self.interval)):
            print(line, file=self.stream, flush=True)
            self._last_printed, self._printed = now, line
        # The last line is news only where it says more than the time: a run that ended just after its last
        # update would otherwise end its output and its log with the same line twice, a second apart.
        if (_unclocked(line) != _unclocked(self._logged_line)) if final else (line != self._last_line and changed):
            self._append(line)
            self._logged_line = line
        self._last_line = line

    def close(self) -> None:
        """End the in-place line on a terminal."""
        if self.tty and self._last_line:
            self.stream.write("\n")
            self.stream.flush()

    def _log_finished(self, trials: pd.DataFrame) -> None:
        if not len(trials):
            return
        ended = trials[trials["status"].isin(ENDINGS)]
        # Each trial is logged when it ends, and again only if it ends differently: a trial whose node was lost
        # shows FAILED until Ray retries it from its checkpoint, and then COMPLETE.
        changed = [self._logged.get(str(t)) != s for t, s in zip(ended["trial_id"], ended["status"], strict=True)]
        for row in ended[changed].itertuples(index=False):
            trial_id = str(row.trial_id)
            self._logged[trial_id] = str(row.status)
            self._append(f"trial {trial_id} {row.status}: {_describe(row._asdict(), self.metric)}")

    def _append(self, line: str) -> None:
        # The log is a convenience, the tables are the record: a log that cannot take the line is skipped. A link at
        # sweep.log is replaced, not written through; a FIFO or a folder there is left alone.
        with contextlib.suppress(OSError, StudyError):
            results.append_text(self.log_path, f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")


def logged_endings(path: Path) -> dict[str, str]:
    """Each trial's last ending in a sweep log (``<time> trial <id> <STATUS>: ...`` lines): what a resumed
    study's earlier runs already logged, so that a resume does not log those trials again."""
    endings: dict[str, str] = {}
    try:
        text = results.read_limited(path, MAX_LOG_BYTES).decode("utf-8", errors="replace")
    except (OSError, StudyError):
        return endings  # no log yet (a new study), or one not to read (a link, a FIFO, huge): log every ending
    for line in text.split("\n"):
        words = line.split(" ", 4)
        ending = words[3].rstrip(":") if len(words) >= 4 and words[1] == "trial" else ""
        if ending in ENDINGS:
            endings[words[2]] = ending
    return endings


def _describe(row: dict[str, Any], metric: str) -> str:
    bits = [str(row.get("architecture") or "")]
    for key in ("lr", "batch_size", "loss"):
        if key in row and row[key] == row[key]:
            bits.append(f"{key}={row[key]}")
    value = row.get(metric)
    if isinstance(value, float) and math.isfinite(value):
        bits.append(f"{metric}={value:.5g}")
    error = row.get("error")
    if isinstance(error, str) and error.strip():  # a table's empty cell is NaN
        # A COMPLETE trial with an error was retried by Ray (its worker or node lost) and then finished.
        bits.append(f"(retried after: {error.strip()})" if row.get("status") == results.COMPLETE else f"({error})")
    return " ".join(b for b in bits if b)
