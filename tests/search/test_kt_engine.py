"""The keras-tuner engine: the hp adapter on a conditional space, Hyperband's statuses, and real tiny studies
through the CLI (random search, resume, Hyperband, a failing trial) writing the Ray engine's study format."""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import results
from cae import training
from cae.errors import UsageError
from search.cli import main
from search.kt import engine as kt_engine
from search.kt import tables as kt_tables
from search.kt.space import declare_space, hyperband_trials, sample_params, space_conditions
from search.kt.tables import TrialEntry, stage_status
from search.trial import TrialSettings
from spaces import load_space, space_from_dict
from tests.conftest import in_process
from tests.search.conftest import search_cli

# Depth 1-2 with per-level filters: filters_2 exists only for depth 2 (a conditional keras-tuner parameter).
CONDITIONAL_SPACE = """\
samples: 2
fixed: {task: reconstruct, data: embedded, image_size: 16, max_epochs: 1, batch_size: 16, kernel_size: 3}
params:
  depth: {low: 1, high: 2}
  filters: {per_level: [8, 16], increasing: true}
  latent_dim: {low: 8, high: 16, log: true}
  lr: {low: 1.0e-3, high: 3.0e-3, log: true, role: nuisance}
  skip: {choices: [true, false]}
"""
CHOICE_SPACE = """\
samples: 2
fixed: {task: reconstruct, data: embedded, image_size: 16, max_epochs: 3, batch_size: 16, kernel_size: 3}
params:
  filters: {choices: ["4-8", "8-16"]}
  latent_dim: {low: 8, high: 16}
  lr: {choices: [1.0e-3, 3.0e-3], role: nuisance}
"""


def write_space(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return path


def read_study(root: Path, name: str) -> results.Study:
    return results.load_study(results.study_paths(name, root))


# -- the adapter --------------------------------------------------------------------------------------------------


def test_adapter_declares_and_reads_a_conditional_space() -> None:
    space = space_from_dict({
        "name": "cond",
        "fixed": {"image_size": 16},
        "params": {
            "depth": {"low": 1, "high": 3},
            "filters": {"per_level": [4, 8], "increasing": True},
            "latent_dim": {"low": 8, "high": 64, "log": True},
            "batch_size": {"low": 16, "high": 32, "step": 8},
            "lr": {"low": 1e-4, "high": 1e-2, "log": True},
            "skip": {"choices": [True, False]},
            "loss": {"choices": ["mse", "ssim"]},
        },
    })
    conditions = space_conditions(space)
    assert conditions == {"filters_2": ("depth", [2, 3]), "filters_3": ("depth", [3])}
    hp = declare_space(space, conditions)
    declared = {p.name: p for p in hp.space}
    assert set(declared) == {"depth", "filters_1", "filters_2", "filters_3", "latent_dim", "batch_size", "lr",
                             "skip", "loss"}
    assert (declared["latent_dim"].sampling, declared["latent_dim"].step) == ("log", None)
    assert (declared["batch_size"].sampling, declared["batch_size"].step) == ("linear", 8)
    assert declared["lr"].sampling == "log"
    assert [c.name for c in declared["filters_3"].conditions] == ["depth"] and not declared["filters_1"].conditions
    for depth in (1, 2, 3):
        trial_hp = hp.copy()
        trial_hp.values = {"depth": depth}
        trial_hp.ensure_active_values()  # what an oracle does: random values for the active parameters only
        assert {k for k in trial_hp.values if k.startswith("filters_")} == {f"filters_{i}" for i in
                                                                            range(1, depth + 1)}
        params = sample_params(space, trial_hp, conditions)
        assert len(trial_hp.space) == len(hp.space)  # reading a trial declares nothing new
        assert isinstance(params["skip"], bool) and params["loss"] in ("mse", "ssim")
        flat = space.resolve(params)
        assert flat["depth"] == depth and 8 <= flat["latent_dim"] <= 64 and flat["batch_size"] in (16, 24, 32)


def test_hyperband_trials_match_keras_tuner_bracket_sizes() -> None:
    # 1 epoch: one bracket of one trial; 3: 3 one-epoch stages, 1 promoted to 3 epochs, 2 fresh 3-epoch trials.
    assert [hyperband_trials(e) for e in (1, 2, 3, 9, 27)] == [1, 2, 6, 23, 70]


# -- statuses and tables ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kt_status", "budget", "continued_as", "expected"),
    [
        ("COMPLETED", 3, None, (results.COMPLETE, None)),
        ("COMPLETED", 1, "4", (results.PRUNED, "hyperband stage of 1/3 epochs; promoted as trial 4")),
        ("COMPLETED", 1, None, (results.PRUNED, "hyperband stopped it after 1/3 epochs (not promoted)")),
        ("FAILED", 3, None, (results.FAILED, "diverged")),
        ("INVALID", 1, None, (results.FAILED, "diverged")),
        ("RUNNING", 3, None, (results.RUNNING, None)),
    ],
)
def test_stage_status(kt_status: str, budget: int, continued_as: str | None, expected: tuple) -> None:
    assert stage_status(kt_status, budget, 3, continued_as, "diverged") == expected


def test_trial_tables_follow_the_status_rule(tmp_path: Path) -> None:
    space = load_space(str(write_space(tmp_path, CHOICE_SPACE)))
    settings = TrialSettings(space=space, overrides={"max_epochs": 3, "seed": 0})
    params = {"filters": "4-8", "latent_dim": 8, "lr": 1e-3}

    def record(epochs: list[int], budget: int) -> dict:
        history = [{"epoch": e, "val_mse": 0.1 * e, "seconds": 1.0} for e in epochs]
        return {"budget": budget, "history": history, "metrics": {"val_mse": 0.1, "epochs": epochs[-1]}}

    entries = [
        TrialEntry("0", "COMPLETED", {"tuner/epochs": 1}, params, record=record([1], 1)),
        TrialEntry("1", "COMPLETED", {"tuner/epochs": 1}, params, record=record([1], 1)),
        TrialEntry("2", "COMPLETED", {"tuner/epochs": 3, "tuner/trial_id": "0"}, params, record=record([2, 3], 3)),
        TrialEntry("3", "FAILED", {"tuner/epochs": 3}, params, message="Traceback\n  ...\nFailedTrialError: boom"),
        TrialEntry("4", "RUNNING", {"tuner/epochs": 3}, params),
    ]
    trials, history = kt_tables.trial_tables(entries, settings, 3, "host")
    assert list(trials.columns[: len(results.TRIAL_COLUMNS)]) == list(results.TRIAL_COLUMNS)
    assert list(trials["status"]) == ["PRUNED", "PRUNED", "COMPLETE", "FAILED", "RUNNING"]
    assert list(trials["number"]) == [0, 1, 2, 3, 4]
    assert trials.loc[0, "error"].endswith("promoted as trial 2") and "not promoted" in trials.loc[1, "error"]
    assert trials.loc[3, "error"] == "FailedTrialError: boom"
    assert set(trials["max_epochs"]) == {3} and set(trials["architecture"]) == {"4-8 k3 z8"}
    assert list(zip(history["trial_id"], history["epoch"], strict=True)) == [("0", 1), ("1", 1), ("2", 2), ("2", 3)]


# -- real studies -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_stops_a_keras_tuner_study_at_the_epoch_end_and_resume_finishes_it(tmp_path: Path) -> None:
    import os
    import signal

    from tests.search.conftest import search_popen
    from tests.search.test_sweep import wait_for

    space = write_space(tmp_path, CONDITIONAL_SPACE)
    root = tmp_path / "results"
    args = ("--engine", "keras-tuner", "--kt-tuner", "random", "--space", str(space), "--samples", "3",
            "--max-epochs", "2", "--limit", "32", "--root", str(root))
    proc = search_popen("run", *args, "--study", "ktc", log=tmp_path / "run.log")
    wait_for(lambda: (root / "ktc" / "kt" / "trial_0").is_dir(), 240, proc)  # the first trial has started
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=180) == 130
    out = (tmp_path / "run.log").read_text()
    assert "interrupted: " in out and "continue with: python -m search resume --study ktc" in out
    assert "Traceback" not in out
    study = read_study(root, "ktc")
    assert study.meta["status"] == "interrupted" and len(study.trials) < 3

    proc = search_cli("resume", "--study", "ktc", "--root", str(root))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study = read_study(root, "ktc")
    assert study.meta["status"] == "done" and list(study.trials["status"]) == ["COMPLETE"] * 3
    assert not study.history.duplicated(["trial_id", "epoch"]).any()
    assert (study.history.groupby("trial_id").size() == 2).all()


def in_this_process(monkeypatch: pytest.MonkeyPatch) -> Callable[..., subprocess.CompletedProcess]:
    """``python -m search`` run in this test process (TensorFlow imported once for the file); the device setup, which
    must precede TensorFlow's start, is the Ctrl-C test's (a fresh process) to check."""
    monkeypatch.setattr(kt_engine, "configure_devices", lambda *args: None)
    return lambda *argv: in_process(main, *argv)


@pytest.mark.slow
def test_random_search_then_resume_adds_one_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    search_cli = in_this_process(monkeypatch)
    space = write_space(tmp_path, CONDITIONAL_SPACE)
    root = tmp_path / "results"
    proc = search_cli(
        "run", "--engine", "keras-tuner", "--kt-tuner", "random", "--space", str(space), "--samples", "2",
        "--max-epochs", "1", "--limit", "32", "--study", "kt1", "--root", str(root),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study = read_study(root, "kt1")
    assert study.meta["engine"] == "keras-tuner" and study.meta["sampler"] == "random"
    assert study.meta["status"] == "done" and study.meta["samples"] == 2 and study.meta["storage"] is None
    first = study.trials
    assert list(first.columns[: len(results.TRIAL_COLUMNS)]) == list(results.TRIAL_COLUMNS)
    assert list(first["status"]) == ["COMPLETE", "COMPLETE"] and list(first["number"]) == [0, 1]
    assert first["test_mse"].notna().all() and (first["max_epochs"] == 1).all() and (first["seed"] == 0).all()
    assert first["node"].notna().all() and "epochs" in first and "filters_1" not in first
    assert sorted(study.history["trial_id"]) == sorted(first["trial_id"])
    models = {t: (root / "kt1" / "models" / f"{t}.keras").stat().st_mtime for t in first["trial_id"]}

    proc = search_cli("resume", "--study", "kt1", "--root", str(root), "--samples", "3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study = read_study(root, "kt1")
    assert study.meta["samples"] == 3 and len(study.trials) == 3
    kept = study.trials.iloc[:2]
    columns = ["trial_id", "val_mse", "test_mse", "architecture", "lr", "finished_at"]
    pd.testing.assert_frame_equal(kept[columns], first[columns])  # not re-run: same ids, values and times
    assert {t: (root / "kt1" / "models" / f"{t}.keras").stat().st_mtime for t in kept["trial_id"]} == models
    assert study.trials.loc[2, "status"] == "COMPLETE" and study.trials.loc[2, "trial_id"] not in models
    assert len(study.history) == 3


@pytest.mark.slow
def test_hyperband_prunes_stages_and_continues_the_promoted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    search_cli = in_this_process(monkeypatch)
    space = write_space(tmp_path, CHOICE_SPACE)
    root = tmp_path / "results"
    proc = search_cli(
        "run", "--engine", "keras-tuner", "--kt-tuner", "hyperband", "--space", str(space), "--limit", "16",
        "--study", "hb", "--root", str(root),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study = read_study(root, "hb")
    trials = study.trials.set_index("trial_id")
    assert study.meta["samples"] == 6 == len(trials) and study.meta["scheduler"] == "hyperband"
    pruned, complete = trials[trials["status"] == "PRUNED"], trials[trials["status"] == "COMPLETE"]
    assert len(pruned) == 3 and len(complete) == 3
    assert (pruned["epochs"] == 1).all() and pruned["test_mse"].isna().all()
    assert (complete["epochs"] == 3).all() and complete["test_mse"].notna().all()
    models = {p.stem for p in (root / "hb" / "models").glob("*.keras")}
    assert models == set(complete.index)
    promoted = pruned[pruned["error"].str.contains("promoted as trial")]
    assert len(promoted) == 1
    child = promoted["error"].iloc[0].rsplit(" ", 1)[-1]
    assert trials.loc[child, "architecture"] == promoted["architecture"].iloc[0]
    epochs = study.history.groupby("trial_id")["epoch"].apply(list).to_dict()
    assert epochs[child] == [2, 3]  # continued from its parent's checkpoint, not retrained
    assert epochs[promoted.index[0]] == [1]

    proc = search_cli("resume", "--study", "hb", "--root", str(root), "--samples", "7")
    assert proc.returncode == 2 and "cannot be extended" in proc.stderr


@pytest.mark.slow
def test_a_failing_trial_is_a_row_and_the_study_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(kt_engine, "configure_devices", lambda *args: None)  # TensorFlow may be up already
    real_train, calls = training.train, []

    def train(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise training.DivergedError("training diverged: loss is nan at epoch 1")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(training, "train", train)
    space = write_space(tmp_path, CONDITIONAL_SPACE)
    common = ["--engine", "keras-tuner", "--kt-tuner", "bayesian", "--space", str(space), "--limit", "16",
              "--root", str(tmp_path)]
    assert main(["run", "--study", "f1", "--samples", "2", *common]) == 0
    trials = read_study(tmp_path, "f1").trials
    assert list(trials["status"]) == ["FAILED", "COMPLETE"]
    assert trials.loc[0, "error"] == "training diverged: loss is nan at epoch 1"
    assert math.isnan(trials.loc[0, "val_mse"]) and trials.loc[0, "architecture"]
    record = json.loads((tmp_path / "f1" / "kt" / "trial_0" / "record.json").read_text())
    assert "DivergedError" in record["traceback"]

    monkeypatch.setattr(training, "train", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("out of memory")))
    assert main(["run", "--study", "f2", "--samples", "3", *common]) == 1  # nothing finished: exit code 1
    study = read_study(tmp_path, "f2")
    assert study.meta["status"] == "failed" and list(study.trials["status"]) == ["FAILED"] * 3
    assert set(study.trials["error"]) == {"RuntimeError: out of memory"}
    assert "3 x RuntimeError: out of memory" in capsys.readouterr().out


def test_options_that_need_ray_are_refused_before_the_study_exists(tmp_path: Path) -> None:
    space = write_space(tmp_path, CONDITIONAL_SPACE)
    with pytest.raises(UsageError, match="--address"):
        main(["run", "--engine", "keras-tuner", "--space", str(space), "--study", "a1", "--root", str(tmp_path),
              "--address", "auto"])
    assert not (tmp_path / "a1").exists()


@pytest.mark.slow
def test_a_hyperband_stage_rerun_over_a_leftover_checkpoint_folder(tmp_path: Path) -> None:
    """An interrupted stage left its checkpoint folder (with a best-weights file of other weights); the rerun
    replaces it whole, so the trial that continues it cannot pick up the stale file."""
    import keras_tuner
    import numpy as np

    from search.interrupt import Interruption
    from search.kt.trial import CHECKPOINT_DIR, TrialRunner
    from search.options import SweepOptions
    from search.plan import plan_new

    space = write_space(tmp_path, CONDITIONAL_SPACE.replace("max_epochs: 1", "max_epochs: 2"))
    opts = SweepOptions(study="left", space=str(space), root=str(tmp_path), engine="keras-tuner", limit=16)
    sweep = plan_new(opts)
    runner = TrialRunner(sweep, space_conditions(sweep.space), Interruption())
    hp = declare_space(sweep.space, runner.conditions)
    hp.values.update({"depth": 1, "filters_1": 8, "latent_dim": 8, "tuner/epochs": 1})
    trial_dir = tmp_path / "trial_0"
    stale = trial_dir / CHECKPOINT_DIR
    stale.mkdir(parents=True)
    np.savez(stale / "best.npz", np.zeros(3))
    (stale / "stray.txt").write_text("left by the interrupted attempt")
    value = runner.run_trial(keras_tuner.engine.trial.Trial(hp, trial_id="0"), trial_dir)
    assert math.isfinite(value["val_mse"])
    assert not (stale / "stray.txt").exists()
    assert {p.name for p in stale.iterdir()} >= {"model.keras", "progress.json"}
    if (stale / "best.npz").exists():
        assert len(np.load(stale / "best.npz").files) > 1  # this run's weights, not the stale single array
