"""One writer per study: a lock file that names its holder.

Two ``search run``/``resume`` commands on the same study would both write the trial table and the Optuna
storage; the second is refused with the holder's pid, host and command instead. The lock is an OS-level
``flock`` (via ``filelock``), so it is released automatically when the holder dies, even by SIGKILL.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from types import TracebackType

from filelock import FileLock, Timeout

from cae.errors import StudyError
from results.folder import StudyPaths


class StudyLock:
    """Context manager: hold ``<study>/.lock`` or raise :class:`StudyError` naming who holds it."""

    def __init__(self, paths: StudyPaths) -> None:
        self.paths = paths
        self._lock = FileLock(str(paths.lock), timeout=0)
        self._info = paths.folder / ".lock.holder"

    def __enter__(self) -> StudyLock:
        try:
            self._lock.acquire()
        except Timeout:
            raise StudyError(
                f"study {self.paths.name!r} is in use by {self._holder()}; wait for it to finish or stop it first"
            ) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv), "since": time.time()}
        self._info.write_text(json.dumps(holder))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._info.unlink(missing_ok=True)
        self._lock.release()

    def _holder(self) -> str:
        try:
            info = json.loads(self._info.read_text())
            return f"pid {info['pid']} on {info['host']} ({info['command']})"
        except (OSError, ValueError, KeyError):
            return "another process"
