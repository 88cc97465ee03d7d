"""Every sampler by name drives a real Optuna study over a real space (no Ray, no training: the objective is a
known function of the configuration), and its suggestions are configurations the space accepts."""

from __future__ import annotations

import math
import sys

import optuna
import pytest

from cae.errors import UsageError
from search.options import SAMPLERS, SweepOptions
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


@pytest.mark.parametrize(("startup", "random_first"), [(None, 10), (3, 3)])
def test_tpe_draws_its_start_up_trials_at_random_then_its_own(startup: int | None, random_first: int) -> None:
    """``--startup-trials`` is TPE's ``n_startup_trials``: its first trials are exactly the random sampler's draws
    with the same seed (Optuna's default: 10), the next ones its model's (a continuous learning rate: a model's
    draw equal to the random one has probability 0)."""
    space = load_space(TUNED)
    draw = SpaceSampler(space)

    def value(trial: optuna.Trial) -> float:
        draw(trial)
        return objective(space.resolve(trial.params))

    def drawn(sampler: optuna.samplers.BaseSampler) -> list[float]:
        study = optuna.create_study(sampler=sampler)
        study.optimize(value, n_trials=random_first + 2)
        return [t.params["lr"] for t in study.trials]

    tpe = drawn(make_sampler("tpe", seed=5, startup_trials=startup))
    plain = drawn(make_sampler("random", seed=5))
    assert tpe[:random_first] == plain[:random_first]
    assert tpe[random_first:] != plain[random_first:]


def test_start_up_trials_belong_to_the_samplers_that_have_them() -> None:
    assert make_sampler("cmaes", seed=0, startup_trials=4)._n_startup_trials == 4
    with pytest.raises(UsageError, match="the random sampler has no start-up trials"):
        make_sampler("random", seed=0, startup_trials=4)
    for bad in ({"sampler": "qmc", "startup_trials": 2}, {"startup_trials": 0}, {"startup_trials": True},
                {"engine": "keras-tuner", "startup_trials": 2}):
        with pytest.raises(UsageError, match="--startup-trials"):
            SweepOptions(study="s", **bad)
    kept = SweepOptions(study="s", sampler="cmaes", startup_trials=4)
    assert SweepOptions.from_dict(kept.to_dict()).startup_trials == 4  # recorded in study.json, used on resume
    assert SweepOptions.from_dict({"study": "old"}).startup_trials is None  # a study from before the option
