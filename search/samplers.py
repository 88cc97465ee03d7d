"""Optuna samplers by name, seeded explicitly.

TPE uses the constant-liar strategy because Ray runs several trials at once: without it, trials started
together would be suggested nearly the same point.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from cae.errors import UsageError
from search.compat import PicklableLocks
from search.options import STARTUP_SAMPLERS


class StudyGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, without its ``study.stop()`` once the grid is exhausted.

    ``GridSampler.after_trial`` stops the study from inside ``tell`` when the last grid point is told; outside
    ``study.optimize`` (Ray Tune tells the results) that raises in the middle of the sweep. caesweep clips a grid
    study's trial count to the grid's size instead (:mod:`search.sweep`), so the sweep ends by itself.
    """

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        return None


class StudyNSGAIISampler(PicklableLocks, optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II, picklable: Optuna 5.1 added a thread lock to it, and Ray pickles the searcher (with its
    sampler) into every run's state, so every ``--sampler nsga2`` sweep failed with "cannot pickle
    '_thread.lock' object" (:class:`search.compat.PicklableLocks`)."""


def make_sampler(
    name: str, seed: int, *, grid: dict[str, list[Any]] | None = None, startup_trials: int | None = None
) -> Any:
    """The Optuna sampler called ``name`` (one of ``search.options.SAMPLERS``); ``startup_trials``: the random
    trials before a model-based sampler's model takes over (``n_startup_trials``; None: Optuna's default).

    Optuna marks some of these (QMC, TPE's ``group``) experimental; asking for them by name is deliberate, so
    its ExperimentalWarning is not repeated to the user.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _make(name, seed, grid, startup_trials)


def _make(name: str, seed: int, grid: dict[str, list[Any]] | None, startup_trials: int | None) -> Any:
    samplers = optuna.samplers
    startup: dict[str, Any] = {} if startup_trials is None else {"n_startup_trials": startup_trials}
    if startup and name not in STARTUP_SAMPLERS:
        raise UsageError(f"the {name} sampler has no start-up trials")
    if name == "tpe":
        return samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True, group=True, **startup)
    if name == "random":
        return samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        # CMA-ES handles numeric axes; categorical ones fall back to random sampling (warned once).
        return samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False, **startup)
    if name == "qmc":
        return samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if name == "nsga2":
        return StudyNSGAIISampler(seed=seed)
    if name == "grid":
        if grid is None:
            raise UsageError("the grid sampler needs a finite space")
        return StudyGridSampler(grid, seed=seed)
    if name == "gp":
        try:
            import torch  # noqa: F401  (Optuna's GP sampler is built on PyTorch)
        except ImportError:
            raise UsageError(
                "the gp sampler needs PyTorch: pip install 'caesweep[gp]' (or pip install torch), "
                "or choose tpe, cmaes or random"
            ) from None
        return samplers.GPSampler(seed=seed, **startup)
    raise UsageError(f"unknown sampler {name!r}")
