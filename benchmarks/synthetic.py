"""A known-answer problem for the search machinery: the Branin function, minimum 0.397887.

Branin on x1 in [-5, 10], x2 in [0, 15] has three global minimisers, (-pi, 12.275), (pi, 2.275) and
(9.42478, 2.475), all with value 0.397887. :func:`best_so_far` runs one of the suite's samplers (built by
:func:`search.samplers.make_sampler`, exactly as a sweep builds it) on it through Optuna alone, no Ray and no
training, so samplers can be compared in seconds: e.g. that TPE beats random search on average at an equal
budget.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import optuna

from search.samplers import make_sampler

OPTIMUM = 0.397887
DOMAIN = {"x1": (-5.0, 10.0), "x2": (0.0, 15.0)}
MINIMIZERS = ((-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475))


def branin(x1: float, x2: float) -> float:
    """The Branin-Hoo function with its usual constants."""
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


def objective(trial: optuna.Trial) -> float:
    return branin(*(trial.suggest_float(name, low, high) for name, (low, high) in DOMAIN.items()))


def best_so_far(sampler: str, seed: int, trials: int) -> np.ndarray:
    """The best Branin value after each of ``trials`` evaluations by the named sampler, seeded with ``seed``."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per trial otherwise
    try:
        with warnings.catch_warnings():  # TPE's multivariate/group options are flagged experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(direction="minimize", sampler=make_sampler(sampler, seed))
            study.optimize(objective, n_trials=trials)
    finally:
        optuna.logging.set_verbosity(previous)
    return np.minimum.accumulate(np.array([t.value for t in study.trials], dtype=float))
