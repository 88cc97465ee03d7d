"""What caesweep needs of its dependencies beyond their public APIs, and the versions it was tested with.

Every use of a dependency's private attributes lives here, each behind a check that the installed version is
one it was tested with (:func:`require`), so an untested release fails in one clear line instead of somewhere
deep in a sweep: Optuna has no public call to re-open a RUNNING trial by its number, nor to read one trial
without reading the whole study (:func:`open_trial`, :func:`trial_by_number`); Ray Tune restores a run with the
callbacks and searcher it pickled, with no public way to give it new ones (:func:`rebind_restored`); a
keras-tuner oracle is given its folder only by a Tuner (:func:`set_oracle_folder`); Ray's Hyperband counts a
bracket full by its live trials, with no public way to change that (:class:`search.schedulers.LiveHyperBand`
subclasses its brackets, after :func:`require`).

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
# model files, TensorFlow's kernels, optuna-dashboard's and TensorBoard's readers of the study folder, and
# keras-tuner's oracle state (a keras-tuner study's record).
GUARDED = ("ray", "optuna", "keras", "tensorflow", "optuna-dashboard", "tensorboard", "keras-tuner")

# The versions `make test` last passed with on a fresh install (2026-12-06, Python 3.11, 2 CPU cores, no GPU).
TESTED: Mapping[str, str] = {
    "ray": "2.60.0",
    "optuna": "5.1.0",
    "keras": "3.15.1",
    "tensorflow": "2.21.0",
    "optuna-dashboard": "0.21.0",
    "tensorboard": "2.21.0",
    "keras-tuner": "1.4.8",
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


class UntestedVersion(RuntimeError):
    """A private attribute is used with a version of its package it was not tested with."""


_checked: dict[str, bool] = {}


def require(package: str, what: str) -> None:
    """Refuse, in one line, to use ``package``'s private ``what`` unless its installed version is within the
    bounds caesweep declares (the tested range)."""
    if _checked.get(package):
        return
    requirement = bounds().get(package)
    version = installed(package)
    if requirement is None or version is None or not requirement.specifier.contains(Version(version), True):
        allowed = spec_text(requirement) if requirement is not None else "undeclared"
        raise UntestedVersion(f"caesweep uses {package}'s {what}, tested with {package} {allowed}; {package} "
                              f"{version or 'missing'} is installed: run `make install` for a tested version")
    _checked[package] = True


def open_trial(study: Any, frozen: Any) -> Any:
    """An ``optuna.Trial`` for a trial already in the study (RUNNING, asked by this or an earlier driver), to
    report to, tell and annotate: Optuna builds one only from the trial's storage id."""
    import optuna

    require("optuna", "trial storage ids (FrozenTrial._trial_id)")
    return optuna.Trial(study, frozen._trial_id)


def trial_by_number(study: Any, number: int) -> Any:
    """The FrozenTrial of trial ``number``, read alone (``study.get_trials`` reads every trial of the study)."""
    require("optuna", "storage (Study._storage, Study._study_id)")
    storage = study._storage
    return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study._study_id, number))


def rebind_restored(tuner: Any, callbacks: list[Any], searcher: Any | None) -> None:
    """Give a Tuner made by ``Tuner.restore`` this driver's callbacks and, when the restored run had a searcher,
    ``searcher`` in its place: Tune unpickles the ones the run was started with, bound to where the study was
    then (a copied or moved study must never write into the original)."""
    require("ray", "restored Tuner internals (Tuner._local_tuner)")
    internal = tuner._local_tuner  # a local Tuner (no Ray client): always set
    internal._run_config.callbacks = callbacks
    if searcher is not None and internal._tune_config.search_alg is not None:
        internal._tune_config.search_alg = searcher


def set_oracle_folder(oracle: Any, folder: str, name: str) -> None:
    """Where a keras-tuner oracle used without a Tuner (a benchmark's replay) keeps its trials: a Tuner would set
    it through the same private setter."""
    require("keras-tuner", "oracle folder setter (Oracle._set_project_dir)")
    oracle._set_project_dir(folder, name)


def main() -> int:
    for line in version_lines():
        print(line)
    problems = check_versions()
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
