"""Real sweeps through Ray Tune + Optuna on tiny data: tables and storage agree, ASHA prunes honestly,
a SIGKILLed driver resumes with nothing lost or duplicated, finished studies extend.

Only the SIGKILL test runs ``python -m search`` in subprocesses (its guarantee is about a killed driver and its
process group). The others run the CLI's code in this process, on the test process's one private Ray
(``private_ray``): a sweep then costs its trials, not a Python start, ``ray.init`` and Ray's shutdown (~10 s
each). Those whose checks need real training (saved models, kept epochs, ASHA pruning, test scores, a real run's
progress output) train for real; those about the search machinery alone use the synthetic trainable
(:func:`benchmarks.synthetic.synthetic_trainable`: reports like a real trial, trains nothing, no TensorFlow)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest

from benchmarks.synthetic import synthetic_trainable
from results import trust
from search import commands
from search.cli import build_parser, main, options_from_args
from search.options import SweepOptions
from search.ray_files import PARTIAL
from search.searcher import ABANDONED_ATTR, RAY_TRIAL_ATTR
from tests.conftest import in_process, read_study_table
from tests.search.conftest import search_cli, search_popen
from tests.search.test_tensorboard import assert_curves_equal

pytestmark = pytest.mark.slow

COMMON = ("--max-epochs", "3", "--limit", "48", "--seed", "0")


def run_options(*argv: str) -> SweepOptions:
    """The options that ``python -m search run ARGV`` parses: for ``commands.run`` with a trainable of a test's."""
    return options_from_args(build_parser().parse_args(["run", *argv]))


def optuna_trials(root: Path, study: str) -> list[optuna.trial.FrozenTrial]:
    """The study's Optuna trials that were trained (proposals that repeated an earlier trial are not)."""
    storage = f"sqlite:///{root / study / 'optuna.db'}"
    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    return [t for t in trials if "duplicate_of" not in t.user_attrs]


def check_kept_epoch(root: Path, study: str, trials: pd.DataFrame) -> None:
    """Every COMPLETE trial's val metrics are those of its best_epoch in history.csv, and Optuna holds them."""
    history = read_study_table(root / study / "history.csv").set_index(["trial_id", "epoch"])
    ot = {t.user_attrs["ray_trial_id"]: t for t in optuna_trials(root, study)}
    for row in trials[trials["status"] == "COMPLETE"].itertuples():
        kept = history.loc[(str(row.trial_id), int(row.best_epoch))]
        for metric in ("val_mse", "val_loss", "val_native_mse", "val_psnr", "val_ssim"):
            assert getattr(row, metric) == pytest.approx(kept[metric]), (row.trial_id, metric)
        assert ot[str(row.trial_id)].value == pytest.approx(kept["val_mse"])


def check_agreement(root: Path, study: str, expected: int) -> pd.DataFrame:
    """trials.csv, the Optuna storage and the Ray experiment describe the same trials."""
    trials = read_study_table(root / study / "trials.csv")
    assert len(trials) == expected
    assert trials["trial_id"].is_unique
    ot = {t.user_attrs["ray_trial_id"]: t for t in optuna_trials(root, study)}
    assert len(ot) == expected == len(optuna_trials(root, study))
    names = {"COMPLETE": "COMPLETE", "PRUNED": "PRUNED", "FAIL": "FAILED"}
    for row in trials.itertuples():
        t = ot[str(row.trial_id)]
        assert t.number == row.number
        assert names[t.state.name] == row.status
        if row.status == "COMPLETE":
            assert t.value == pytest.approx(row.val_mse)
    ray_trials = {p.name.removeprefix("trial_") for p in (root / study / "ray").glob("run-*/trial_*")}
    assert ray_trials == {str(t) for t in trials["trial_id"]}
    # Ray wrote every file through the atomic filesystem, and closed each: none is left half-written.
    assert not [p for p in (root / study / "ray").rglob(f"*{PARTIAL}")]
    return trials


def test_sweep_tpe_asha(tmp_path: Path, tiny_space: Path, private_ray: None) -> None:
    """Real training (saved models, kept epochs that differ from the last, ASHA pruning a learning rate too small
    to learn, test scores, a real run's progress output), but the CLI in this process: nothing here is about a
    process."""
    proc = in_process(
        main, "run", "--space", str(tiny_space), "--study", "s1", "--root", str(tmp_path), "--samples", "8",
        "--concurrency", "1", *COMMON,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "top " in proc.stdout
    # The progress view, not Ray's per-trial tables: a short log (not a TTY) with the counts and the best.
    lines = proc.stdout.splitlines()
    assert len(lines) < 40, proc.stdout
    assert not any("Trial name" in line or "Configuration for experiment" in line for line in lines)
    progress = [line for line in lines if " finished" in line and " elapsed" in line]
    assert progress and progress[-1].startswith("8/8 finished (") and "| best val_mse " in progress[-1]
    log = (tmp_path / "s1" / "sweep.log").read_text().splitlines()
    assert sum(" COMPLETE: " in line or " PRUNED: " in line for line in log) == 8
    trials = check_agreement(tmp_path, "s1", 8)
    check_kept_epoch(tmp_path, "s1", trials)
    meta = json.loads((tmp_path / "s1" / "study.json").read_text())
    assert meta["status"] == "done" and meta["sampler"] == "tpe" and meta["scheduler"] == "asha"
    assert meta["versions"]["ray"] and meta["roles"]["filters"] == "scientific"
    history = read_study_table(tmp_path / "s1" / "history.csv")
    assert set(history["trial_id"].astype(str)) == set(trials["trial_id"].astype(str))

    pruned = trials[trials["status"] == "PRUNED"]
    assert len(pruned) >= 1, "ASHA stopped no trial; the space has a learning rate too small to survive epoch 1"
    for t in optuna_trials(tmp_path, "s1"):
        if t.state.name == "PRUNED":
            # The values ASHA judged, epoch by epoch: never COMPLETE with a partial-epoch loss.
            # (Optuna stores a pruned trial's last intermediate value as its value, as optimize() does.)
            assert t.intermediate_values and max(t.intermediate_values) < 3
            assert t.value == t.intermediate_values[max(t.intermediate_values)]
        if t.state.name == "COMPLETE":
            assert sorted(t.intermediate_values) == [1, 2, 3]
            assert t.value == pytest.approx(min(t.intermediate_values.values()))
    done = trials[trials["status"] == "COMPLETE"]
    assert done["test_mse"].notna().all() and (done["epochs"] == 3).all()
    assert all((tmp_path / "s1" / "models" / f"{tid}.keras").exists() for tid in done["trial_id"])
    assert (done["trivial_mse"] > 0).all()
    assert done["node"].notna().all()

    for folder in (tmp_path / "s1" / "ray" / "run-1").glob("trial_*"):
        # Checkpoints every epoch, but only the latest and the best are kept.
        assert 1 <= len(list(folder.glob("checkpoint_*"))) <= 2

    listing = in_process(main, "list", "--root", str(tmp_path))
    assert listing.returncode == 0 and "s1" in listing.stdout and "done" in listing.stdout


def wait_for(predicate, timeout: float, proc) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        assert proc.poll() is None, "the sweep ended before the test could interrupt it"
        time.sleep(0.5)
    raise AssertionError("timed out waiting for the sweep")


def completed(folder: Path) -> pd.DataFrame:
    try:
        df = read_study_table(folder / "trials.csv")
    except (FileNotFoundError, pd.errors.EmptyDataError):
        # Not written yet: the driver writes a trial's result lines at once, the tables at a bounded rate, so a
        # kill at the first result line can come before the first table.
        return pd.DataFrame(columns=["trial_id", "status"])
    return df[df["status"] == "COMPLETE"]


def drop_from_saved_state(run: Path, trial_id: str) -> None:
    """Ray's saved state of a run as it was before ``trial_id`` started: the trial left out of its trial list."""
    (path,) = run.glob("experiment_state-*.json")
    state = json.loads(path.read_text())
    state["trial_data"] = [t for t in state["trial_data"] if json.loads(t[0])["trial_id"] != trial_id]
    path.write_text(json.dumps(state))
    trust.sign_file(path)  # a state this user's driver wrote (the test plays that driver)


def first_epoch_reported(folder: Path) -> bool:
    return any(f.read_text().strip() for f in folder.glob("ray/run-*/trial_*/result.json"))


def kill_group(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started, at once
    proc.wait()


def test_resume_after_driver_sigkill(tmp_path: Path, tiny_space: Path) -> None:
    """SIGKILLed at a trial's first epoch (its state files left cut short), resumed; that resume SIGKILLed once
    two more trials have finished, resumed again: 5 trials, none lost, none trained twice, nothing duplicated.

    Subprocesses and real training, all three commands: the guarantee is about a driver killed with its process
    group (Ray's processes too) and what a fresh process finds after it; the TensorBoard curves checked at the
    end are real training's."""
    args = ("--space", str(tiny_space), "--study", "k1", "--root", str(tmp_path), "--samples", "5",
            "--scheduler", "none", "--concurrency", "2", *COMMON)
    folder = tmp_path / "k1"
    proc = search_popen("run", *args, log=tmp_path / "run.log")
    wait_for(lambda: first_epoch_reported(folder), 240, proc)
    before = completed(folder).set_index("trial_id")
    kill_group(proc)
    # As a driver killed while Ray copied its state left it before caesweep wrote Ray's files atomically: the
    # searcher's state cut short. Its bookkeeping is found again in the Optuna storage.
    states = list((folder / "ray" / "run-1").glob("searcher-state-*.pkl"))
    assert states
    for state in states:
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
        trust.sign_file(state)  # as the driver of an older version would have written it (signed by this user)
        # and what a driver killed while writing a state file leaves now: the file half-written beside it
        (state.parent / f".{state.name}.0123abcd{PARTIAL}").write_bytes(b"half")
    # And a trial started after Ray's last save of its state (a driver killed within that second; CI met it): a
    # trial with an epoch reported, taken out of the state Ray restores (if the kill had not already).
    unrecorded = next(f.parent.name.removeprefix("trial_")
                      for f in folder.glob("ray/run-1/trial_*/result.json") if f.read_text().strip())
    drop_from_saved_state(folder / "ray" / "run-1", unrecorded)

    # The resume, killed in turn once two more trials have finished than before it.
    proc = search_popen("resume", "--study", "k1", "--root", str(tmp_path), log=tmp_path / "resume.log")
    wait_for(lambda: len(completed(folder)) >= len(before) + 2, 240, proc)
    first_resume = completed(folder).set_index("trial_id")
    kill_group(proc)
    resumed = (tmp_path / "resume.log").read_text()
    assert "started after Ray last saved the run's state" in resumed, resumed[-3000:]

    out = search_cli("resume", "--study", "k1", "--root", str(tmp_path))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    trials = check_agreement(tmp_path, "k1", 5).set_index("trial_id")
    # The unrecorded trial's files set aside, out of the tables and of TensorBoard; its Optuna trial trained again,
    # whole (a kill of the first resume may have set another trial aside the same way).
    assert unrecorded not in trials.index
    asides = list((folder / "ray").glob("_abandoned-run-1-*"))
    kept = [a / f"trial_{unrecorded}" / "result.json" for a in asides]
    assert [f for f in kept if f.is_file() and f.read_text().strip()], asides
    assert not (folder / "tensorboard" / unrecorded).exists()
    (again,) = [t for t in optuna_trials(tmp_path, "k1") if t.user_attrs.get(ABANDONED_ATTR) == unrecorded]
    assert trials.loc[again.user_attrs[RAY_TRIAL_ATTR], "number"] == again.number
    assert (trials["status"] == "COMPLETE").all()
    for finished in (before, first_resume):
        for tid, row in finished.iterrows():
            # Finished before a kill: kept with the same result, not trained again.
            assert trials.loc[tid, "val_mse"] == pytest.approx(row["val_mse"])
            assert trials.loc[tid, "finished_at"] == row["finished_at"]
    history = read_study_table(folder / "history.csv")
    assert not history.duplicated(["trial_id", "epoch"]).any()
    assert (history.groupby("trial_id").size() == 3).all()
    assert {t.state.name for t in optuna_trials(tmp_path, "k1")} == {"COMPLETE"}
    for tid, curve in history.groupby("trial_id"):
        # TensorBoard's own reader: every epoch once, the values of history.csv, across the kills and resumes.
        assert_curves_equal(folder / "tensorboard" / tid, curve.reset_index(drop=True))


def test_multi_objective_pareto_with_custom_storage(
    tmp_path: Path, tiny_space: Path, private_ray: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process, synthetic training: the Pareto set, the storage elsewhere and ASHA's note are the search
    machinery's. (The synthetic trial reports val_mse and params as a real one does, its params the same for every
    configuration: the Pareto set is then the trials of the least val_mse.)"""
    storage = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    opts = run_options(
        "--space", str(tiny_space), "--study", "m1", "--root", str(tmp_path), "--samples", "3",
        "--objectives", "val_mse,params", "--sampler", "nsga2", "--storage", storage, "--max-epochs", "1",
        "--limit", "48", "--concurrency", "1",
    )
    code = commands.run(opts, trainable=synthetic_trainable())
    out, err = capsys.readouterr()
    assert code == 0, out[-3000:] + err[-3000:]
    assert "note: ASHA stops trials on val_mse alone (the first objective)" in out
    assert not (tmp_path / "m1" / "optuna.db").exists()
    study = optuna.load_study(study_name="m1", storage=storage)
    assert len(study.directions) == 2 and len(study.trials) == 3
    meta = json.loads((tmp_path / "m1" / "study.json").read_text())
    assert meta["scheduler"] == "asha" and meta["storage"] == storage
    assert meta["pareto"] == sorted(t.number for t in study.best_trials) and meta["pareto"]


def distinct_losses() -> Callable[[dict[str, Any], Any, Any], None]:
    """The synthetic trainable, its known loss made to depend on ``filters`` too (through the learning rate it is
    given): the tiny space's 8 configurations then have 8 different losses, as real training's have, so "the
    best 2" is one pair. The tables keep the sampled configuration."""
    trainable = synthetic_trainable()

    def run(config: dict[str, Any], data: Any, settings: Any) -> None:
        if config["filters"] == "8-16":
            config = {**config, "lr": config["lr"] * 1.5}
        trainable(config, data, settings)

    return run


def test_an_extension_trains_new_configurations_and_confirm_repeats_the_best(
    tmp_path: Path, tiny_space: Path, private_ray: None
) -> None:
    """Random search over the tiny space's 8 configurations: 4 trials, extended to 8, give 8 different ones
    (run 2's sampler is seeded apart from run 1's, and a repeated proposal is never trained); the finished
    trials are kept as they were, and derived tables damaged in between are rebuilt. Then confirm re-trains the
    best 2 with 2 new training seeds each, tells no sampler, and continues where it stopped.

    In this process, synthetic training (one trainable for the study's three runs, as Ray restores a run only with
    the trainable it started with): all of it is the search machinery's; nothing checked needs a trained model."""
    trainable = distinct_losses()
    args = ("--space", str(tiny_space), "--study", "d1", "--root", str(tmp_path), "--sampler", "random",
            "--scheduler", "none", "--max-epochs", "1", "--limit", "48", "--seed", "0", "--concurrency", "1")
    assert commands.run(run_options(*args, "--samples", "4"), trainable=trainable) == 0
    first = read_study_table(tmp_path / "d1" / "trials.csv").set_index("trial_id")
    # Damage the derived tables as a crash mid-write on a non-atomic filesystem would: resume rebuilds them.
    text = (tmp_path / "d1" / "trials.csv").read_text()
    (tmp_path / "d1" / "trials.csv").write_text(text[: len(text) // 2])
    (tmp_path / "d1" / "history.csv").write_text("trial_id,epo")
    assert commands.resume("d1", str(tmp_path), 8, trainable=trainable) == 0
    trials = check_agreement(tmp_path, "d1", 8)
    assert trials[["filters", "latent_dim", "lr"]].drop_duplicates().shape[0] == 8
    kept = trials.set_index("trial_id")
    for tid, row in first.iterrows():
        assert kept.loc[tid, "val_mse"] == pytest.approx(row["val_mse"], nan_ok=True)
        assert kept.loc[tid, "status"] == row["status"]
    # Optuna's numbers (a repeated proposal, told and not trained, takes one too): run 2's come after run 1's.
    numbers = trials.set_index("trial_id")["number"]
    assert numbers.is_unique and numbers[numbers.index.isin(first.index)].max() < numbers.drop(first.index).min()
    assert (tmp_path / "d1" / "ray" / "run-2").is_dir()
    extended = json.loads((tmp_path / "d1" / "study.json").read_text())
    assert extended["samples"] == 8 and extended["runs"] == ["run-1", "run-2"] and extended["status"] == "done"

    assert commands.confirm("d1", str(tmp_path), 2, 2, trainable=trainable) == 0
    table = read_study_table(tmp_path / "d1" / "trials.csv")
    search, repeats = table[table["repeat_of"].isna()], table[table["repeat_of"].notna()]
    best = search[search["status"] == "COMPLETE"].sort_values("val_mse").head(2)
    assert sorted(repeats["repeat_of"]) == sorted(list(best["trial_id"]) * 2)
    assert (repeats["status"] == "COMPLETE").all() and repeats["test_mse"].notna().all()
    for original, group in repeats.groupby("repeat_of"):
        assert sorted(group["seed"]) == [1, 2]  # the original trained with the study's seed 0
        row = best.set_index("trial_id").loc[original]
        assert (group[["filters", "latent_dim", "lr"]] == row[["filters", "latent_dim", "lr"]]).all().all()
    assert len(optuna_trials(tmp_path, "d1")) == 8  # no sampler was told
    meta = json.loads((tmp_path / "d1" / "study.json").read_text())
    assert meta["confirm"] == {"top": 2, "repeats": 2, "status": "done"} and meta["status"] == "done"

    assert commands.confirm("d1", str(tmp_path), 2, 2, trainable=trainable) == 0
    assert len(read_study_table(tmp_path / "d1" / "trials.csv")) == 12  # nothing trained twice
    check_agreement_search = read_study_table(tmp_path / "d1" / "history.csv")
    assert not check_agreement_search.duplicated(["trial_id", "epoch"]).any()
