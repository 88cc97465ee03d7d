"""Run a caesweep entry point in-process on one fuzzed input and check what a user would see.

The property every reader must hold (checked by :func:`check`):

* it exits 0, or 2 with exactly one line on stderr starting ``error:`` (caesweep's user error); any other
  exception is a traceback the user would see, and fails the case;
* it finishes within :data:`CASE_SECONDS` (a hang or an expensive input fails the case);
* it writes nothing outside the folders it is allowed to write (for most readers: nothing at all), also when
  the folder it reads holds links out of it, FIFOs or huge files (:class:`tests.fuzz.strategies.Special`).

Each case runs in a fresh sandbox folder (:class:`Sandbox`) with the working directory three levels deep
inside it, so relative paths, even with a ``..`` or two, land in the sandbox, where writes are seen.
To fuzz another command, give :func:`run_cli` its ``main`` (or a ``prepare`` that stops before the
expensive part) and the folders it may write.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from cae.cli import run

# Generous: a case takes milliseconds to seconds (a report on a busy 2-core machine); a hang never ends.
CASE_SECONDS = 120.0
USER_EXIT_CODES = (0, 2)


class CaseTimeout(BaseException):
    """Raised in the main thread when a case runs past its time (a BaseException, so no handler eats it)."""


@dataclass(frozen=True)
class Outcome:
    """What one run of an entry point did."""

    argv: tuple[str, ...]
    returncode: int | None  # None: it raised (see ``exception``)
    stdout: str
    stderr: str
    exception: BaseException | None
    seconds: float
    written: tuple[str, ...]  # sandbox paths created, changed or removed outside the allowed folders


@dataclass
class Sandbox:
    """A temporary folder for one case; ``cwd`` is ``base/a/b/c`` so that ``../..`` stays inside."""

    base: Path

    @property
    def cwd(self) -> Path:
        return self.base / "a" / "b" / "c"

    @property
    def root(self) -> Path:
        """Where fuzzed study folders live (a results root)."""
        return self.base / "results"


@contextlib.contextmanager
def sandbox() -> Iterator[Sandbox]:
    with tempfile.TemporaryDirectory(prefix="caesweep-fuzz-") as folder:
        box = Sandbox(Path(folder).resolve())
        box.cwd.mkdir(parents=True)
        box.root.mkdir()
        yield box


def run_cli(
    main: Callable[[Sequence[str] | None], int],
    argv: Sequence[str],
    box: Sandbox,
    allowed: Sequence[Path] = (),
    seconds: float = CASE_SECONDS,
) -> Outcome:
    """Run ``main(argv)`` the way ``python -m`` does (through :func:`cae.cli.run`), inside ``box``."""
    before = _snapshot(box.base)
    out, err = io.StringIO(), io.StringIO()
    previous_cwd = os.getcwd()
    returncode: int | None = None
    exception: BaseException | None = None
    start = time.perf_counter()
    try:
        os.chdir(box.cwd)
        with _time_limit(seconds), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            returncode = run(main, list(argv))
    except CaseTimeout as exc:
        exception = exc
    except SystemExit as exc:  # argparse's --help and the like exit through SystemExit
        returncode = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:  # a traceback the user would see
        exception = exc
    finally:
        os.chdir(previous_cwd)
    seconds_taken = time.perf_counter() - start
    after = _snapshot(box.base)
    changed = {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}
    # Taken as written (".." folded, no link followed): a link in a fuzzed folder (its report/ pointing out of
    # it) does not make the place it points to allowed.
    allowed_here = [Path(os.path.normpath(box.cwd / path)) for path in allowed]
    written = tuple(sorted(str(p) for p in changed if not _may_write(Path(p), after.get(p), allowed_here)))
    return Outcome(tuple(argv), returncode, out.getvalue(), err.getvalue(), exception, seconds_taken, written)


def problems(outcome: Outcome, exit_codes: Sequence[int] = USER_EXIT_CODES) -> list[str]:
    """Every way ``outcome`` breaks the property (empty when it holds)."""
    found = []
    if isinstance(outcome.exception, CaseTimeout):
        found.append(f"still running after {outcome.seconds:.0f} s")
    elif outcome.exception is not None:
        found.append(f"traceback: {type(outcome.exception).__name__}: {outcome.exception}"[:300])
    elif outcome.returncode not in exit_codes:
        found.append(f"exit code {outcome.returncode}, expected one of {list(exit_codes)}")
    if outcome.returncode == 2:
        lines = outcome.stderr.splitlines()
        if len(lines) != 1 or not lines[0].startswith("error: "):
            found.append(f"a user error is not one 'error: ...' line on stderr: {outcome.stderr[:300]!r}")
    if "Traceback (most recent call last)" in outcome.stderr:
        found.append("a traceback on stderr")
    if outcome.written:
        found.append(f"wrote outside the allowed folders: {', '.join(outcome.written[:5])}")
    return found


def check(outcome: Outcome, exit_codes: Sequence[int] = USER_EXIT_CODES) -> None:
    """Fail (AssertionError naming the argv) when ``outcome`` breaks the property."""
    found = problems(outcome, exit_codes)
    if found:
        raise AssertionError(f"argv {list(outcome.argv)}: " + "; ".join(found))


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: FrameType | None) -> None:
        raise CaseTimeout(f"after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _snapshot(base: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``base``: files with their size and modification time, folders by existence only
    (a folder's time changes with what is written inside it, which is judged by its own path)."""
    found = {}
    for folder, dirs, files in os.walk(base):
        found.update({os.path.join(folder, name): (-1, -1) for name in dirs})
        for name in files:
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                info = os.lstat(path)
                found[path] = (info.st_size, info.st_mtime_ns)
    return found


def _may_write(path: Path, state: tuple[int, int] | None, allowed: Sequence[Path]) -> bool:
    """Inside an allowed folder, or a folder on the way to one (``--out a/b/c`` creates ``a`` and ``a/b``)."""
    is_folder = state == (-1, -1)
    return any(_inside(path, folder) or (is_folder and _inside(folder, path)) for folder in allowed)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents
