"""Convergence tables, checked exactly on hand-made events."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmarks import analyzers

EVENTS = pd.DataFrame({
    "method": ["a"] * 5 + ["a"] * 3 + ["b"] * 4,
    "seed": [0] * 5 + [1] * 3 + [0] * 4,
    "trial": [0, 0, 1, 1, 2, 0, 0, 1, 0, 1, 1, 2],
    "value": [0.5, 0.4, 0.6, 0.3, 0.35, 0.2, 0.25, 0.1, 0.9, 0.8, 0.85, 0.7],
})


def test_best_so_far_counts_epochs_and_keeps_the_lowest_value() -> None:
    curves = analyzers.best_so_far(EVENTS)
    assert curves["spent"].tolist() == [1, 2, 3, 4, 5, 1, 2, 3, 1, 2, 3, 4]
    assert curves["best"].tolist() == [0.5, 0.4, 0.4, 0.3, 0.3, 0.2, 0.2, 0.1, 0.9, 0.8, 0.8, 0.7]
    assert analyzers.is_monotone(curves)
    assert not analyzers.is_monotone(curves.assign(best=curves["value"]))


def test_a_run_that_ended_early_keeps_its_best_up_to_the_budget() -> None:
    grid = analyzers.on_budget_grid(analyzers.best_so_far(EVENTS), budget=4)
    run = grid[(grid["method"] == "a") & (grid["seed"] == 1)]
    assert run["spent"].tolist() == [1, 2, 3, 4] and run["best"].tolist() == [0.2, 0.2, 0.1, 0.1]
    longer = grid[(grid["method"] == "a") & (grid["seed"] == 0)]
    assert longer["best"].tolist() == [0.5, 0.4, 0.4, 0.3]  # cut at the budget


def test_summary_is_the_median_and_quartiles_over_seeds() -> None:
    summary = analyzers.summarize(analyzers.on_budget_grid(analyzers.best_so_far(EVENTS), budget=4))
    a4 = summary[(summary["method"] == "a") & (summary["spent"] == 4)].iloc[0]
    assert a4["median"] == pytest.approx(0.2) and a4["n"] == 2
    assert a4["q25"] == pytest.approx(0.15) and a4["q75"] == pytest.approx(0.25)


def test_compute_to_target_is_exact_and_inf_when_half_the_runs_miss() -> None:
    curves = analyzers.best_so_far(EVENTS)
    table = analyzers.compute_table(curves, best_known=0.1, budget=5).set_index("method")
    # target 0.105: run a/0 never gets there, a/1 at its third epoch; b never.
    assert table.loc["a", "reached"] == "1/2" and table.loc["a", "epochs_median"] == math.inf
    assert table.loc["a", "epochs_min"] == 3 == table.loc["a", "epochs_max"]
    assert table.loc["a", "final_median"] == pytest.approx(0.2)  # median of 0.3 and 0.1 at 5 epochs
    assert table.loc["b", "reached"] == "0/1" and table.loc["b", "final_gap"] == pytest.approx(6.0)
    easier = analyzers.compute_table(curves, best_known=0.35, budget=5).set_index("method")
    # target 0.3675: run a/0 at its fourth epoch (0.3), a/1 at its first (0.2).
    assert easier.loc["a", "epochs_median"] == 2.5 and easier.loc["a", "reached"] == "2/2"


def test_each_method_is_tested_against_the_best_beyond_a_practical_margin() -> None:
    finals = pd.DataFrame({
        "method": ["a"] * 5 + ["b"] * 5 + ["c"] * 5 + ["d"],
        "seed": [*range(5)] * 3 + [0],
        "best": [0.200, 0.201, 0.200, 0.202, 0.200,  # the lowest median: the best
                 0.300, 0.310, 0.305, 0.301, 0.302,  # above every value of a, even with the margin
                 0.2001, 0.2005, 0.2002, 0.2003, 0.2004,  # above a's median, but inside the margin
                 0.9],  # one seed: nothing to test
    })
    table = analyzers.against_best(finals, margin=0.022).set_index("method")
    assert table["vs_best"].to_dict() == {"a": "best", "b": "worse", "c": "no difference detected", "d": ""}
    assert table["n"].to_dict() == {"a": 5, "b": 5, "c": 5, "d": 1}
    # b: complete separation, the one arrangement of 252 (C(10, 5)) as extreme, times 2 (Holm over b and c).
    assert table.loc["b", "p_vs_best"] == pytest.approx(2 / 252)
    assert table.loc["c", "p_vs_best"] == pytest.approx(1.0) and math.isnan(table.loc["a", "p_vs_best"])
    lenient = analyzers.against_best(finals, margin=0.6).set_index("method")  # b is within 60 % of a
    assert lenient.loc["b", "vs_best"] == "no difference detected"
