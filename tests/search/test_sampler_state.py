"""Every sampler caesweep offers survives what Ray does to it: the searcher (sampler inside) is pickled into the
run's state and restored on resume. Optuna 5.1's NSGA-II holds a thread lock that no pickler copies, which failed
every ``--sampler nsga2`` sweep; each sampler is checked here twice: its searcher pickled and restored as Ray does
(no Ray), and a real two-trial sweep on a private Ray, stopped by SIGTERM and resumed to the end (the trainable
reports a known loss and trains nothing, so a sampler costs seconds)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from ray import cloudpickle

from benchmarks.synthetic import known_loss, synthetic_trainable
from results.reports import EpochReport, FinalReport
from search import commands
from search.options import SAMPLERS, STARTUP_SAMPLERS, SweepOptions
from search.samplers import make_sampler
from search.searcher import StudySearch
from spaces import load_space
from tests.conftest import read_study_table

MULTI = {"nsga2"}  # samplers for several objectives: they get val_mse and params


def objectives(name: str) -> list[str]:
    return ["val_mse", "params"] if name in MULTI else ["val_mse"]


def searcher(name: str, space: Path, storage: str) -> StudySearch:
    loaded = load_space(str(space))
    goals = objectives(name)
    grid = loaded.grid() if name == "grid" else None
    sampler = make_sampler(name, 0, grid=grid, startup_trials=1 if name in STARTUP_SAMPLERS else None)
    return StudySearch(loaded, objectives=goals, modes=["min"] * len(goals), sampler=sampler, storage_url=storage,
                       study_name="s", grid=grid is not None)


def final(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's final report with the synthetic trainable's loss (val_mse, and params for two objectives)."""
    value = known_loss(config)
    return FinalReport(EpochReport(1, {"val_mse": value}, kept={"val_mse": value}, costs={"params": 1000}),
                       epochs=1, best_epoch=1).to_dict()


@pytest.mark.parametrize("name", SAMPLERS)
def test_each_samplers_searcher_is_pickled_and_restored_as_ray_does(
    name: str, tmp_path: Path, tiny_space: Path
) -> None:
    """Tune pickles the whole searcher into ``tuner.pkl`` (cloudpickle) and saves its state with ``save``;
    resume unpickles both. The restored searcher holds the same kind of sampler, with its history, and goes on
    proposing configurations of the space."""
    if name == "gp":
        pytest.importorskip("torch")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = searcher(name, tiny_space, storage)
    for rid in ("a", "b"):  # a model-based sampler fits its model after one start-up trial: it has state
        first.on_trial_complete(rid, final(first.suggest(rid)))
    first.suggest("c")
    copy = cloudpickle.loads(cloudpickle.dumps(first))  # what Tuner writes to tuner.pkl and restore reads
    assert type(copy._sampler) is type(first._sampler)
    state = tmp_path / "searcher-state.pkl"
    first.save(str(state))

    restored = searcher(name, tiny_space, storage)
    restored.restore(str(state))
    assert type(restored._sampler) is type(first._sampler)
    restored.on_trial_complete("c", final({"lr": 1e-3}))
    proposal = restored.suggest("d")
    assert isinstance(proposal, dict) and set(proposal) == {"filters", "latent_dim", "lr"}
    study = optuna.load_study(study_name="s", storage=storage)
    told = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    assert len(told) >= 3  # a, b and c (and any proposal told as a repeat of them)


def interrupting(marker: Path, driver: int) -> Any:
    """The synthetic trainable, except that the first trial to begin an epoch sends SIGTERM to the driver (once
    per study: ``marker``) and gives it a moment to stop the run before it goes on."""

    def signal_once(epoch: int) -> None:
        if not marker.exists():
            marker.write_text("sent")
            os.kill(driver, signal.SIGTERM)
            time.sleep(0.3)  # the trial usually ends at its first report; if not, the run stops after it

    return synthetic_trainable(before_epoch=signal_once)


@pytest.mark.slow
@pytest.mark.parametrize("name", SAMPLERS)
def test_each_sampler_runs_a_sweep_that_is_interrupted_and_resumed(
    name: str, tmp_path: Path, tiny_space: Path, private_ray: None
) -> None:
    if name == "gp":
        pytest.importorskip("torch")
    opts = SweepOptions(
        study="s", space=str(tiny_space), root=str(tmp_path), samples=2, max_epochs=2, limit=16, sampler=name,
        scheduler="none", concurrency=1, objectives=tuple(objectives(name)),
        startup_trials=1 if name in STARTUP_SAMPLERS else None,
    )
    marker = tmp_path / "signal-sent"
    trainable = interrupting(marker, os.getpid())  # Ray restores a run with the trainable it started with
    assert commands.run(opts, trainable=trainable) == 143
    folder = tmp_path / "s"
    assert marker.exists() and json.loads((folder / "study.json").read_text())["status"] == "interrupted"
    before = read_study_table(folder / "trials.csv")
    finished = before[before["status"] == "COMPLETE"].set_index("trial_id")

    assert commands.resume("s", str(tmp_path), None, trainable=trainable) == 0
    meta = json.loads((folder / "study.json").read_text())
    assert meta["status"] == "done" and meta["sampler"] == name
    trials = read_study_table(folder / "trials.csv").set_index("trial_id")
    assert len(trials) == 2 and (trials["status"] == "COMPLETE").all()
    for tid, row in finished.iterrows():  # finished before the signal: kept as it was, not trained again
        assert trials.loc[tid, "finished_at"] == row["finished_at"]
    assert len(read_study_table(folder / "history.csv")) == 4  # two trials of two epochs
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{folder / 'optuna.db'}")
    trained = [t for t in study.get_trials(deepcopy=False) if "duplicate_of" not in t.user_attrs]
    assert sorted(t.state.name for t in trained) == ["COMPLETE", "COMPLETE"]
