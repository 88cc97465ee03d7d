"""One writer per study: a lock file that names its holder.

Two ``search run``/``resume`` commands on the same study would both write the trial table and the Optuna
storage; the second is refused with the holder's pid, host and command instead. The lock is an OS-level
``flock`` (via ``filelock``), so it is released automatically when the holder dies, even by SIGKILL.

Whether a study is in use is the lock's to say, not ``study.json``'s: a driver that could not record its end (a
full disk, SIGKILL) leaves ``status: running`` behind, but no process holds its lock (:func:`lock_holder`). The lock
and ``.lock.holder`` are written as every file of a study is (:mod:`results.files`): a link there is replaced,
never written through.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import time
from contextlib import suppress
from types import TracebackType

from filelock import FileLock, Timeout

from cae.errors import StudyError
from results.files import read_limited, write_atomic
from results.folder import StudyPaths

MAX_HOLDER_BYTES = 64 * 1024  # .lock.holder is one short JSON line


class StudyLock:
    """Context manager: hold ``<study>/.lock`` or raise :class:`StudyError` naming who holds it."""

    def __init__(self, paths: StudyPaths) -> None:
        self.paths = paths
        self._lock = FileLock(str(paths.lock), timeout=0)
        self._info = paths.folder / ".lock.holder"

    def __enter__(self) -> StudyLock:
        _remove_foreign_lock(self.paths)
        try:
            self._lock.acquire()
        except Timeout:
            raise StudyError(
                f"study {self.paths.name!r} is in use by {_holder(self.paths)}; wait for it to finish or stop it first"
            ) from None
        except OSError as exc:
            reason = exc.strerror or exc
            raise StudyError(f"the lock {self.paths.lock} cannot be taken ({reason}); move it away") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv), "since": time.time()}
        with suppress(OSError, StudyError):  # who holds it is a courtesy for the next one; the lock is what counts
            write_atomic(self._info, json.dumps(holder), self.paths.folder)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._info.unlink(missing_ok=True)
        self._lock.release()


def lock_holder(paths: StudyPaths) -> str | None:
    """Who holds the study's lock now ("pid 123 on host (command)", or "another process"); None when nobody
    does. Takes the lock for an instant at most, and writes nothing."""
    if not _plain_lock(paths):
        return None  # no lock file (never run here), or one that no caesweep process holds
    probe = FileLock(str(paths.lock), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return _holder(paths)
    except OSError:
        return None
    probe.release()
    return None


def refuse_if_locked(paths: StudyPaths) -> None:
    """Raise :class:`StudyError` naming the holder when another process holds the study; writes nothing."""
    found = lock_holder(paths)
    if found is not None:
        raise StudyError(f"study {paths.name!r} is in use by {found}; wait for it to finish or stop it first")


def _plain_lock(paths: StudyPaths) -> bool:
    try:
        return stat.S_ISREG(os.lstat(paths.lock).st_mode)
    except OSError:
        return False


def _remove_foreign_lock(paths: StudyPaths) -> None:
    """A ``.lock`` that is a link was not made by caesweep: it is removed (never followed), and a new lock file
    takes its place."""
    with suppress(OSError):
        if stat.S_ISLNK(os.lstat(paths.lock).st_mode):
            os.unlink(paths.lock)


def _holder(paths: StudyPaths) -> str:
    try:
        info = json.loads(read_limited(paths.folder / ".lock.holder", MAX_HOLDER_BYTES))
        return f"pid {info['pid']} on {info['host']} ({info['command']})"
    except (OSError, StudyError, ValueError, KeyError, TypeError):
        return "another process"
