"""Every sampler by name drives a real Optuna study over a real space (no Ray, no training: the objective is a
known function of the configuration), and its suggestions are configurations the space accepts."""

from __future__ import annotations

import math
import sys

import optuna
import pytest

from cae.errors import UsageError
from search.options import SAMPLERS
from search.samplers import make_sampler
from search.searcher import SpaceSampler
from spaces import load_space
from tests.spaces_for_tests import TUNED

optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective(config: dict) -> float:
    """Smallest at lr 1e-3 and latent size 64: a known optimum inside the ``TUNED`` space."""
    return (math.log10(config["lr"]) + 3) ** 2 + (math.log2(config["latent_dim"]) - 6) ** 2


@pytest.mark.parametrize("name", SAMPLERS)
def test_each_sampler_suggests_configurations_the_space_accepts(name: str) -> None:
    space = load_space("loss" if name == "grid" else TUNED)  # the grid sampler needs a finite space
    grid = space.grid() if name == "grid" else None
    sampler = make_sampler(name, seed=0, grid=grid)
    study = optuna.create_study(sampler=sampler)
    draw = SpaceSampler(space, grid=grid is not None)
    configs = []

    def trial_value(trial: optuna.Trial) -> float:
        draw(trial)
        config = space.resolve(trial.params)  # raises SpaceError for anything the space would refuse
        configs.append(config)
        return objective(config) if "latent_dim" in config and "lr" in config else float(trial.number)

    n = math.prod(len(values) for values in grid.values()) if grid else 12  # the grid: every point once
    study.optimize(trial_value, n_trials=n)
    assert len(configs) == n and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert len({tuple(sorted(map(str, c.items()))) for c in configs}) > 1  # it explores


def test_the_gp_sampler_is_optunas_gaussian_process_and_learns() -> None:
    """GP (on PyTorch) ends nearer the optimum than its own start-up points."""
    space = load_space(TUNED)
    study = optuna.create_study(sampler=make_sampler("gp", seed=0))
    draw = SpaceSampler(space)

    def trial_value(trial: optuna.Trial) -> float:
        draw(trial)
        return objective(space.resolve(trial.params))

    study.optimize(trial_value, n_trials=24)
    assert isinstance(study.sampler, optuna.samplers.GPSampler)
    values = [t.value for t in study.trials]
    assert min(values[10:]) < min(values[:10])  # GP's own suggestions beat the first 10 (random) ones


def test_gp_without_pytorch_is_a_one_line_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # what `import torch` sees where it is not installed
    with pytest.raises(UsageError, match=r"the gp sampler needs PyTorch: pip install 'caesweep\[gp\]'"):
        make_sampler("gp", seed=0)
