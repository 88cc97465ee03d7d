"""``--scheduler hyperband`` on the Ray engine: real Ray, real Optuna, the synthetic trainable (reports like a real
trial, checkpoints each epoch, trains nothing).

Every outcome here holds by construction, not by timing: the configurations are enqueued in a fixed order, so
each bracket's trials are known; the synthetic loss at every epoch ranks the configurations as their known loss
does (``loss * (1 + 1/epoch)``), so each rung's choice is known; and Hyperband judges a rung only once all the
bracket's trials are at it, whichever reaches it first. With max_epochs 3 and factor 3, Ray's Hyperband fills a
bracket of 3 trials with a rung at epoch 1 (it keeps 1), then a bracket of 2 trials with no rung (both train to
the end), then again 3 with a rung."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import optuna
import pytest

from benchmarks.synthetic import known_loss, synthetic_trainable
from search import commands
from search.options import SweepOptions
from tests.conftest import read_study_table
from tests.search.conftest import SYNTHETIC, search_cli, search_popen
from tests.search.test_sweep import check_agreement, wait_for

pytestmark = pytest.mark.slow
KEYS = ["filters", "latent_dim", "lr"]
# The tiny space's configurations by known loss (lr 3e-3 beats 1e-5; latent 16 beats 4; filters do not count):
# A 1.73, B 3.23, C 5.5, D 7.0 (times 0.01).
A, B, C, D = ({"latent_dim": 16, "lr": 3.0e-3}, {"latent_dim": 4, "lr": 3.0e-3}, {"latent_dim": 16, "lr": 1.0e-5},
              {"latent_dim": 4, "lr": 1.0e-5})
SMALL, LARGE = {"filters": "4-8"}, {"filters": "8-16"}
ORDER = [  # bracket 1 (rung at epoch 1, keeps 1): A; bracket 2 (no rung): both; bracket 3: the last one, A
    {**A, **SMALL}, {**C, **SMALL}, {**D, **SMALL},
    {**B, **SMALL}, {**D, **LARGE},
    {**C, **LARGE}, {**B, **LARGE}, {**A, **LARGE},
]
KEPT, STOPPED = {0, 3, 4, 7}, {1, 2, 5, 6}  # trial numbers


def _enqueue(tmp_path: Path) -> str:
    path = tmp_path / "order.yaml"
    path.write_text("".join(f"- {{filters: {c['filters']}, latent_dim: {c['latent_dim']}, lr: {c['lr']:.1e}}}\n"
                            for c in ORDER))
    return str(path)


def _results(tmp_path: Path, study: str, trial_id: str) -> list[dict]:
    [folder] = (tmp_path / study / "ray").glob(f"run-*/trial_{trial_id}")
    return [json.loads(line) for line in (folder / "result.json").read_text().splitlines() if line.strip()]


def test_hyperband_pauses_resumes_and_stops_trials_at_its_rungs(tmp_path: Path, tiny_space: Path,
                                                                private_ray) -> None:
    assert known_loss({**A, "seed": 0}) < known_loss({**B, "seed": 0}) < known_loss({**C, "seed": 0})
    opts = SweepOptions(study="hb", space=str(tiny_space), root=str(tmp_path), samples=len(ORDER), max_epochs=3,
                        limit=16, sampler="random", scheduler="hyperband", concurrency=1, enqueue=_enqueue(tmp_path))
    assert commands.run(opts, trainable=synthetic_trainable(checkpoints=True)) == 0

    meta = json.loads((tmp_path / "hb" / "study.json").read_text())
    assert meta["status"] == "done" and meta["scheduler"] == "hyperband"
    trials = read_study_table(tmp_path / "hb" / "trials.csv").set_index("number").sort_index()
    assert [dict(zip(KEYS, row, strict=True)) for row in trials[KEYS].itertuples(index=False)] == \
        [{"filters": c["filters"], "latent_dim": c["latent_dim"], "lr": c["lr"]} for c in ORDER]
    assert {n for n in trials.index if trials.at[n, "epochs"] == 3 and trials.at[n, "status"] == "COMPLETE"} == KEPT
    assert {n for n in trials.index if trials.at[n, "epochs"] == 1 and trials.at[n, "status"] == "PRUNED"} == STOPPED

    # Optuna: the stopped trials PRUNED with the value of the epoch they were judged on, the kept ones COMPLETE.
    study = optuna.load_study(study_name="hb", storage=f"sqlite:///{tmp_path / 'hb' / 'optuna.db'}")
    told = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert {n for n, t in told.items() if t.state == optuna.trial.TrialState.PRUNED} == STOPPED
    assert {n for n, t in told.items() if t.state == optuna.trial.TrialState.COMPLETE} == KEPT
    for number in STOPPED:
        assert told[number].intermediate_values == {1: pytest.approx(trials.at[number, "val_mse"])}
    for number in KEPT:
        assert sorted(told[number].intermediate_values) == [1, 2, 3]

    # The first trial waited at its rung for the bracket's two others, was paused, and resumed from its checkpoint
    # after them: Ray restored it (its time since restore began again), and it went on from epoch 2.
    history = read_study_table(tmp_path / "hb" / "history.csv")
    for number in KEPT:
        epochs = history[history["trial_id"] == trials.at[number, "trial_id"]]["epoch"].tolist()
        assert sorted(epochs) == [1, 2, 3], (number, epochs)  # no epoch trained twice, none skipped
    first = _results(tmp_path, "hb", trials.at[0, "trial_id"])
    assert [r["epoch"] for r in first] == [1, 2, 3]
    assert [r["iterations_since_restore"] for r in first] == [1, 1, 2]  # restored once, before epoch 2
    stopped_at = {n: _results(tmp_path, "hb", trials.at[n, "trial_id"])[-1]["timestamp"] for n in STOPPED}
    assert first[1]["timestamp"] >= max(stopped_at[1], stopped_at[2])  # resumed once its bracket was judged


def test_hyperband_on_the_first_of_several_objectives_without_a_concurrency_cap(
    tmp_path: Path, tiny_space: Path, private_ray, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same brackets with trials running side by side (no --concurrency: as many as the CPUs allow) and two
    objectives: the rungs judge val_mse, the one the trials differ in; which trial reaches a rung first changes
    nothing. A multi-objective Optuna study has no intermediate values: the stopped trials are PRUNED all the same."""
    opts = SweepOptions(study="mo", space=str(tiny_space), root=str(tmp_path), samples=len(ORDER), max_epochs=3,
                        limit=16, sampler="nsga2", scheduler="hyperband", objectives=("val_mse", "params"),
                        enqueue=_enqueue(tmp_path))
    assert commands.run(opts, trainable=synthetic_trainable(checkpoints=True)) == 0
    assert "note: Hyperband stops trials on val_mse alone (the first objective)" in capsys.readouterr().out
    trials = read_study_table(tmp_path / "mo" / "trials.csv").set_index("number").sort_index()
    assert set(trials.index[(trials["status"] == "COMPLETE") & (trials["epochs"] == 3)]) == KEPT
    assert set(trials.index[(trials["status"] == "PRUNED") & (trials["epochs"] == 1)]) == STOPPED
    study = optuna.load_study(study_name="mo", storage=f"sqlite:///{tmp_path / 'mo' / 'optuna.db'}")
    states = {t.number: t.state.name for t in study.get_trials(deepcopy=False)}
    assert {n for n, state in states.items() if state == "PRUNED"} == STOPPED
    assert {n for n, state in states.items() if state == "COMPLETE"} == KEPT
    history = read_study_table(tmp_path / "mo" / "history.csv")
    assert not history.duplicated(["trial_id", "epoch"]).any()
    meta = json.loads((tmp_path / "mo" / "study.json").read_text())
    assert meta["status"] == "done" and set(meta["pareto"]) <= KEPT


def test_an_interrupted_hyperband_study_resumes_its_paused_trials_from_their_checkpoints(
    tmp_path: Path, tiny_space: Path
) -> None:
    """Ctrl-C once the first trial waits paused at its rung (the second has started: one trial runs at a time),
    then ``search resume``: real driver processes whose trials report and checkpoint each epoch without training.
    The resumed run puts its unfinished trials in fresh brackets (which of them are stopped then depends on when
    the signal came), so what is checked holds whatever it stopped: every trial ends COMPLETE after max_epochs or
    PRUNED before, Optuna agrees with the tables, no trial trains an epoch twice or starts again from the first,
    and a bracket of the resumed run still stops trials at its rung."""
    args = ("--space", str(tiny_space), "--study", "r", "--root", str(tmp_path), "--samples", str(len(ORDER)),
            "--max-epochs", "3", "--limit", "16", "--sampler", "random", "--scheduler", "hyperband",
            "--concurrency", "1", "--enqueue", _enqueue(tmp_path))
    proc = search_popen("run", *args, log=tmp_path / "run.log", module=SYNTHETIC, env={"SYNTHETIC_EPOCH_S": "0.3"})
    folder = tmp_path / "r"
    wait_for(lambda: sum(1 for f in folder.glob("ray/run-*/trial_*/result.json") if f.read_text().strip()) >= 2,
             240, proc)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130, (tmp_path / "run.log").read_text()[-3000:]
    assert json.loads((folder / "study.json").read_text())["status"] == "interrupted"

    out = search_cli("resume", "--study", "r", "--root", str(tmp_path), module=SYNTHETIC,
                     env={"SYNTHETIC_EPOCH_S": "0.05"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    meta = json.loads((folder / "study.json").read_text())
    assert meta["status"] == "done" and meta["scheduler"] == "hyperband"
    trials = check_agreement(tmp_path, "r", len(ORDER))
    complete, pruned = trials[trials["status"] == "COMPLETE"], trials[trials["status"] == "PRUNED"]
    assert len(complete) + len(pruned) == len(ORDER) and (complete["epochs"] == 3).all()
    assert (pruned["epochs"] < 3).all() and len(pruned) >= 2
    history = read_study_table(folder / "history.csv")
    for trial_id, epochs in history.groupby("trial_id")["epoch"]:
        assert sorted(epochs) == list(range(1, len(epochs) + 1)), (trial_id, list(epochs))
    # The trial paused at the signal: its reports across both drivers, epoch after epoch from the first, none again.
    epochs = [r["epoch"] for r in _results(tmp_path, "r", trials.set_index("number").at[0, "trial_id"])]
    assert epochs == list(range(1, len(epochs) + 1)), epochs
