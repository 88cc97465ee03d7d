"""The trial table as an in-memory Optuna study: distributions from the stored space, states, values, curves."""

from __future__ import annotations

import pandas as pd
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from analysis import tables
from analysis.optuna_view import distributions, is_numeric, search_study
from results import COMPLETE, FAILED, PRUNED, RUNNING
from tests.analysis.built_studies import SPACE, curve, meta_for, trial

ROWS = [
    trial(0, COMPLETE, val_mse=0.01, lr=1e-3, depth=3),
    trial(1, PRUNED, lr=3e-4, depth=3, latent_dim=128),
    trial(2, FAILED, lr=5e-3, depth=2),
    trial(3, RUNNING, lr=2e-3, depth=2),
    trial(4, COMPLETE, val_mse=0.02, lr=1e-2, depth=2, latent_dim=16),
]


def frame() -> pd.DataFrame:
    return tables.prepare_trials(pd.DataFrame(ROWS))


def test_distributions_come_from_the_stored_space_or_the_values_seen() -> None:
    dists = distributions(meta_for("s"), frame(), ["lr", "latent_dim", "depth", "filters", "absent"])
    assert dists["lr"] == FloatDistribution(1e-4, 1e-2, log=True)  # the space samples it on a log scale
    assert dists["latent_dim"] == CategoricalDistribution([16, 64, 128])
    assert dists["depth"] == CategoricalDistribution([2, 3])  # derived, not in the space: the values seen
    assert "absent" not in dists
    assert is_numeric(dists["latent_dim"]) and not is_numeric(CategoricalDistribution(["8-16", "16-32"]))


def test_a_value_outside_the_space_falls_back_to_the_values_seen() -> None:
    space = {**SPACE, "params": {**SPACE["params"], "lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}}
    dists = distributions(meta_for("s", space=space), frame(), ["lr"])
    assert dists["lr"] == CategoricalDistribution([3e-4, 1e-3, 2e-3, 5e-3, 1e-2])


def test_the_study_holds_finished_pruned_and_failed_trials_with_their_curves() -> None:
    df = frame()
    history = pd.DataFrame(curve("t00", 0.01, 3) + curve("t01", 0.03, 2))
    study = search_study(df, history, distributions(meta_for("s"), df, ["lr", "latent_dim"]), "val_mse", "min",
                         "val_mse")
    assert [(t.user_attrs["trial_id"], t.state, t.value) for t in study.trials] == [
        ("t00", TrialState.COMPLETE, 0.01), ("t01", TrialState.PRUNED, None), ("t02", TrialState.FAIL, None),
        ("t04", TrialState.COMPLETE, 0.02),
    ]  # the running trial is left out
    assert study.trials[1].params == {"lr": 3e-4, "latent_dim": 128}
    assert study.trials[0].intermediate_values == {e: 0.01 * (1 + 2 / e) for e in (1, 2, 3)}
    assert list(study.trials[1].intermediate_values) == [1, 2]
    assert study.metric_names == ["val_mse"]
