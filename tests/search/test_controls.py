"""The sweep controls users of Optuna, Ray Tune and W&B expect: a time budget over the whole study (soft: no new
trial; hard: running ones stop at their next epoch), size caps that refuse a configuration before training,
configurations trained first, and earlier studies' finished trials told to the sampler (warm start). Every bad
value is one line before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from analysis.report import main as report_main
from benchmarks.synthetic import synthetic_trainable
from cae.config import from_flat
from cae.size import count_params
from search import commands
from search.cli import main
from search.options import SweepOptions
from search.searcher import DUPLICATE_ATTR, IMPORTED_ATTR, INFEASIBLE_ATTR
from spaces import load_space
from tests.conftest import in_process, read_study_table
from tests.search.test_cli_errors import assert_user_error

pytestmark = pytest.mark.slow
KEYS = ["filters", "latent_dim", "lr"]


def options(tmp_path: Path, space: Path, study: str, **changes) -> SweepOptions:
    values = {"study": study, "space": str(space), "root": str(tmp_path), "samples": 4, "max_epochs": 2,
              "limit": 16, "sampler": "random", "scheduler": "none", "concurrency": 1, **changes}
    return SweepOptions(**values)


def meta(tmp_path: Path, study: str) -> dict:
    return json.loads((tmp_path / study / "study.json").read_text())


def optuna_trials(tmp_path: Path, study: str) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{tmp_path / study / 'optuna.db'}"
    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)


def configs(table) -> set[tuple]:
    return {tuple(row) for row in table[KEYS].astype(str).itertuples(index=False)}


def test_a_soft_time_budget_starts_no_trial_once_spent_and_a_resume_keeps_it(
    tmp_path: Path, tiny_space: Path, private_ray, capsys: pytest.CaptureFixture[str]
) -> None:
    """2 s an epoch, 2 epochs a trial, 4 s of budget: at most three trials can start; each finishes (soft); the
    study ends done, the time spent is kept, and resume starts nothing new."""
    opts = options(tmp_path, tiny_space, "tb", samples=8, time_budget_s=4.0)
    assert commands.run(opts, trainable=synthetic_trainable(epoch_seconds=2.0)) == 0
    out = capsys.readouterr().out
    recorded = meta(tmp_path, "tb")
    assert recorded["status"] == "done" and recorded["ended_by"] == "time budget"
    assert recorded["time_spent_s"] >= 4.0 and recorded["options"]["time_budget_s"] == 4.0
    trials = read_study_table(tmp_path / "tb" / "trials.csv")
    assert 0 < len(trials) < 8 and (trials["status"] == "COMPLETE").all()  # the started ones finished
    assert "time budget reached" in out and "the study's time budget is spent" in out
    assert commands.resume("tb", str(tmp_path), None, trainable=synthetic_trainable(epoch_seconds=2.0)) == 0
    assert len(read_study_table(tmp_path / "tb" / "trials.csv")) == len(trials)


def test_a_hard_time_budget_stops_the_running_trial_at_its_next_epoch(tmp_path: Path, tiny_space: Path,
                                                                       private_ray) -> None:
    """One trial of 20 epochs of 1 s and a hard budget of 3 s: it stops after an epoch without its final report,
    so it is pruned (never told as complete with a partial result)."""
    opts = options(tmp_path, tiny_space, "hard", samples=1, max_epochs=20, time_budget_s=3.0, time_budget_hard=True)
    assert commands.run(opts, trainable=synthetic_trainable(epoch_seconds=1.0)) == 0
    (trial,) = read_study_table(tmp_path / "hard" / "trials.csv").to_dict("records")
    assert trial["status"] == "PRUNED" and trial["epochs"] < 20
    assert [t.state.name for t in optuna_trials(tmp_path, "hard")] == ["PRUNED"]
    assert meta(tmp_path, "hard")["status"] == "done"


def test_configurations_over_the_size_cap_are_refused_before_training(tmp_path: Path, tiny_space: Path,
                                                                        private_ray) -> None:
    """The tiny space's grid (8 configurations) under a cap between its two filter lists' sizes: the 4 with the
    bigger filters are refused before any training, told as pruned with the reason, and counted."""
    space = load_space(str(tiny_space))

    def size(filters: str, latent: int) -> int:
        return count_params(from_flat(space.resolve({"filters": filters, "latent_dim": latent, "lr": 3e-3})).model,
                            16, 3, 3)

    small, big = max(size("4-8", z) for z in (4, 16)), min(size("8-16", z) for z in (4, 16))
    assert small < big
    cap = (small + big) // 2
    opts = options(tmp_path, tiny_space, "cap", samples=8, sampler="grid", max_params=cap)
    assert commands.run(opts, trainable=synthetic_trainable()) == 0
    trained = read_study_table(tmp_path / "cap" / "trials.csv")
    assert len(trained) == 4 and set(trained["filters"]) == {"4-8"}
    refused = [t for t in optuna_trials(tmp_path, "cap") if INFEASIBLE_ATTR in t.user_attrs]
    assert len(refused) == 4 and all(t.state.name == "PRUNED" and not t.intermediate_values for t in refused)
    assert all(f"over --max-params {cap:,}" in t.user_attrs[INFEASIBLE_ATTR] for t in refused)
    assert meta(tmp_path, "cap")["refused"] == 4


def test_enqueued_configurations_are_trained_first_in_order(tmp_path: Path, tiny_space: Path, private_ray) -> None:
    first = tmp_path / "first.yaml"
    first.write_text("- {filters: 8-16, latent_dim: 4, lr: 1.0e-5}\n- {latent_dim: 16}\n")
    opts = options(tmp_path, tiny_space, "enq", samples=3, enqueue=str(first))
    assert commands.run(opts, trainable=synthetic_trainable()) == 0
    trials = read_study_table(tmp_path / "enq" / "trials.csv").sort_values("number")
    assert trials.iloc[0][KEYS].tolist() == ["8-16", 4, 1e-5]
    assert trials.iloc[1]["latent_dim"] == 16  # a partial one: the sampler drew the rest
    assert meta(tmp_path, "enq")["enqueued"] == [{"filters": "8-16", "latent_dim": 4, "lr": 1e-5}, {"latent_dim": 16}]


def test_a_warm_start_tells_the_sampler_and_trains_nothing_of_it_again(
    tmp_path: Path, tiny_space: Path, private_ray, capsys: pytest.CaptureFixture[str]
) -> None:
    """Study a trains 4 of the tiny space's 8 configurations; b, warm-started from a, is told a's 4 and trains the
    other 4 (a proposal equal to an imported one is told its outcome, never trained); a's trials are in b's Optuna
    study, marked imported, and in none of b's tables."""
    assert commands.run(options(tmp_path, tiny_space, "a", seed=0), trainable=synthetic_trainable()) == 0
    capsys.readouterr()
    opts = options(tmp_path, tiny_space, "b", warm_start=("a",), sampler="tpe")
    assert commands.run(opts, trainable=synthetic_trainable()) == 0
    assert "warm start: 4 finished trials of a told to the sampler" in capsys.readouterr().out
    ours, theirs = (read_study_table(tmp_path / s / "trials.csv") for s in ("b", "a"))
    assert len(ours) == 4 and not configs(ours) & configs(theirs)
    imported = [t for t in optuna_trials(tmp_path, "b") if IMPORTED_ATTR in t.user_attrs]
    assert len(imported) == 4 and all(t.user_attrs[IMPORTED_ATTR].startswith("a/") for t in imported)
    trained = [t for t in optuna_trials(tmp_path, "b") if IMPORTED_ATTR not in t.user_attrs
               and DUPLICATE_ATTR not in t.user_attrs]
    assert len(trained) == 4
    assert meta(tmp_path, "b")["warm_start"] == {"studies": ["a"], "imported": 4, "skipped": {}}
    assert report_main(["--study", "b", "--root", str(tmp_path), "--no-images"]) == 0  # shown apart, in its header
    report = (tmp_path / "b" / "report" / "report.md").read_text()
    assert "warm start: 4 trials of a told to the sampler first (not trained, counted or ranked here)" in report


@pytest.mark.parametrize(("argv", "words"), [
    (["--time-budget", "0"], ["--time-budget '0'", "2h, 90m or 45s"]),
    (["--time-budget", "5x"], ["--time-budget '5x'"]),
    (["--time-budget-hard"], ["--time-budget-hard needs --time-budget"]),
    (["--max-params", "0"], ["--max-params 0"]),
    (["--max-weights-mb", "-1"], ["--max-weights-mb -1.0"]),
    (["--warm-start", "nowhere"], ["--warm-start nowhere", "no study of that name"]),
    (["--engine", "keras-tuner", "--max-params", "10"], ["--max-params", "keras-tuner engine has no such control"]),
])
def test_bad_controls_are_one_line_and_nothing_is_written(tmp_path: Path, argv: list[str], words: list[str]) -> None:
    proc = in_process(main, "run", "--root", str(tmp_path / "r"), "--study", "x", *argv)
    assert_user_error(proc, *words)
    assert not (tmp_path / "r").exists()


def test_an_enqueued_value_outside_the_space_is_one_line(tmp_path: Path, tiny_space: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {lr: 0.5}\n")
    proc = in_process(main, "run", "--root", str(tmp_path / "r"), "--space", str(tiny_space), "--enqueue", str(bad))
    assert_user_error(proc, "configuration 1", "lr 0.5 is outside the space", "allowed: one of [1e-05, 0.003]")
    assert not (tmp_path / "r").exists()

