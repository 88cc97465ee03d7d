"""What caesweep needs of its dependencies beyond their public APIs, and the versions it was tested with.

A study outlives the process that started it: Ray pickles the searcher (and with it the Optuna sampler) into the
run's state, and a resume months later unpickles it with whatever versions are installed then. So the
dependencies that can break a study are bounded in ``pyproject.toml`` below their next minor release, the
versions this suite last passed with are listed in :data:`TESTED`, and :func:`check_versions` tells in one line
when an installed version is outside the bounds (``make test`` prints :func:`version_lines` before it starts).

``python -m search.compat`` prints the resolved versions and their bounds, and a warning line for each one outside
them (the test ``tests/test_versions.py`` fails on it).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Mapping
from importlib import metadata
from typing import Any

from packaging.requirements import Requirement
from packaging.version import Version

# The dependencies a study's files or a sweep's behaviour depend on: Ray's and Optuna's pickled state, Keras's
# model files, TensorFlow's kernels, optuna-dashboard's and TensorBoard's readers of the study folder.
GUARDED = ("ray", "optuna", "keras", "tensorflow", "optuna-dashboard", "tensorboard")

# The versions `make test` last passed with on a fresh install (2026-12-06, Python 3.11, 2 CPU cores, no GPU).
TESTED: Mapping[str, str] = {
    "ray": "2.60.0",
    "optuna": "5.1.0",
    "keras": "3.15.1",
    "tensorflow": "2.21.0",
    "optuna-dashboard": "0.21.0",
    "tensorboard": "2.21.0",
}

_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def bounds(project: str = "caesweep") -> dict[str, Requirement]:
    """The guarded dependencies' requirements as the installed ``project`` declares them."""
    found: dict[str, Requirement] = {}
    for line in metadata.requires(project) or []:
        requirement = Requirement(line)
        name = requirement.name.lower()
        if name in GUARDED and requirement.marker is None:
            found[name] = requirement
    return found


def spec_text(requirement: Requirement) -> str:
    """The requirement's bounds, lower first: ``>=4.0,<5.2``."""
    return ",".join(sorted((str(spec) for spec in requirement.specifier), key=lambda spec: spec.startswith("<")))


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_versions(project: str = "caesweep") -> list[str]:
    """One line per guarded dependency that is missing, unbounded above, or installed outside its bounds."""
    problems = []
    declared = bounds(project)
    for name in GUARDED:
        requirement = declared.get(name)
        version = installed(name)
        if requirement is None:
            problems.append(f"{project} does not declare {name}: reinstall it with `make install`")
        elif not any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier):
            problems.append(f"{project} requires {requirement} with no upper bound: bound it below the next "
                            f"release not yet tested (tested: {TESTED.get(name, 'none')})")
        elif version is None:
            problems.append(f"{name} is not installed: run `make install`")
        elif not requirement.specifier.contains(Version(version), prereleases=True):
            problems.append(f"{name} {version} is installed but caesweep is tested with {spec_text(requirement)} "
                            f"(last with {TESTED.get(name, 'none')}): run `make install` to get a tested version, "
                            "or test the new one and widen the bound in pyproject.toml")
    return problems


def version_lines(project: str = "caesweep") -> Iterator[str]:
    """The guarded dependencies as resolved here, each with its bounds and the version last tested."""
    declared = bounds(project)
    for name in GUARDED:
        requirement = declared.get(name)
        spec = spec_text(requirement) if requirement is not None else "undeclared"
        yield f"{name} {installed(name) or 'missing'} (allowed {spec}; tested {TESTED.get(name, 'none')})"


class PicklableLocks:
    """A mixin for Optuna samplers that hold thread locks, which neither pickle nor cloudpickle can copy.

    Ray pickles the searcher, sampler included, into each run's state and restores it on resume. Optuna 5.1's
    ``NSGAIISampler`` guards its generation cache with a ``threading.Lock``: the copy leaves every lock out
    and the restored sampler gets new, released ones (a lock protects a process's own threads; a held lock has
    no meaning in another process). Found by type, not by attribute name, so a renamed or added lock is
    covered too.
    """

    _LOCKS_KEY = "__caesweep_locks__"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        locks = {name: isinstance(value, type(threading.RLock())) for name, value in state.items()
                 if isinstance(value, _LOCK_TYPES)}
        for name in locks:
            del state[name]
        state[self._LOCKS_KEY] = locks  # name -> reentrant
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        locks = state.pop(self._LOCKS_KEY, {})
        self.__dict__.update(state)
        for name, reentrant in locks.items():
            setattr(self, name, threading.RLock() if reentrant else threading.Lock())


def main() -> int:
    for line in version_lines():
        print(line)
    problems = check_versions()
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
