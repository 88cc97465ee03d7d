"""Shared plumbing for the thin command-line entry points.

Each CLI module defines ``main(argv) -> int`` and ends with ``raise SystemExit(run(main))``. User mistakes
(:class:`~cae.errors.CaesweepError`, argparse errors) become one line on stderr and exit code 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from collections.abc import Callable, Sequence

from cae.errors import CaesweepError, UsageError

EXIT_OK = 0
EXIT_USER = 2


class ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see --help)")


def one_line(message: str) -> str:
    """``message`` on one line: line breaks and other control characters, which a message quoting user input
    (a key, a file name, a parser's report) may carry, are shown escaped (``\\r``, ``\\x1b``)."""
    return "".join(repr(ch)[1:-1] if unicodedata.category(ch) in _BREAKING else ch for ch in message)


_BREAKING = ("Cc", "Zl", "Zp")  # control characters, line and paragraph separators


_closers: list[Callable[[], None]] = []


def at_command_end(closer: Callable[[], None]) -> None:
    """Have :func:`run` call ``closer`` when a command ends, however it ends (a module registers what it keeps
    open across calls: :func:`search.storage.close_storages` closes the Optuna storages' connections)."""
    if closer not in _closers:
        _closers.append(closer)


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Call ``main(argv)``, turning user errors into one stderr line and exit code 2."""
    try:
        return main(argv)
    except CaesweepError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for closer in _closers:
            closer()
