"""One exception hierarchy for the whole suite.

Every error a user can cause derives from :class:`CaesweepError`; its message is a single line that names
what is wrong and how to fix it. The command-line entry points turn these into one line on stderr and exit
code 2 (see :mod:`cae.cli`); anything else is a bug and keeps its traceback (exit code 1).
"""

from __future__ import annotations


class CaesweepError(Exception):
    """Root of every error caused by user input (bad option, bad file, missing data)."""


class UsageError(CaesweepError):
    """A command-line option or argument is invalid."""


class DataError(CaesweepError):
    """A dataset cannot be found, read or trusted."""


class TaskError(CaesweepError):
    """An unknown task or task parameter."""


class ModelConfigError(CaesweepError):
    """A model or training configuration is impossible (e.g. too deep for the image size)."""


class SpaceError(CaesweepError):
    """A search-space file is invalid."""


class StudyError(CaesweepError):
    """A study folder is missing, locked, corrupt or would be overwritten."""


class BenchmarkError(CaesweepError):
    """An unknown benchmark, a budget too small or a missing benchmark table."""
