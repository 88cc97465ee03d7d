"""The known-answer problem: Branin's minimum, and TPE beating random search on it at an equal budget."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import synthetic

SEEDS = 5
TRIALS = 30


def test_branin_has_its_known_minimum_at_its_three_minimisers() -> None:
    for x1, x2 in synthetic.MINIMIZERS:
        assert synthetic.branin(x1, x2) == pytest.approx(synthetic.OPTIMUM, abs=1e-6)
    grid = np.linspace(-5, 10, 151), np.linspace(0, 15, 151)
    assert min(synthetic.branin(a, b) for a in grid[0] for b in grid[1]) >= synthetic.OPTIMUM - 1e-6


def test_best_so_far_is_monotone_and_never_below_the_optimum() -> None:
    curve = synthetic.best_so_far("random", seed=0, trials=TRIALS)
    assert len(curve) == TRIALS
    assert (np.diff(curve) <= 0).all() and curve.min() >= synthetic.OPTIMUM - 1e-9
    assert (synthetic.best_so_far("random", seed=0, trials=TRIALS) == curve).all()  # seeded


def test_tpe_beats_random_search_on_average_at_equal_budget() -> None:
    final = {name: np.mean([synthetic.best_so_far(name, seed, TRIALS)[-1] for seed in range(SEEDS)])
             for name in ("random", "tpe")}
    assert final["tpe"] < final["random"], final
    assert final["tpe"] - synthetic.OPTIMUM < 0.5 * (final["random"] - synthetic.OPTIMUM), final
