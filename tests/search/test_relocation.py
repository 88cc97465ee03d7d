"""Studies are self-contained: a copied or moved study resumes and extends in its new place without touching the
original's files, and a study always runs the space it was started with, whatever its file says later. A grid
study ends when its grid is exhausted.

Both tests are about the search machinery (where a study's files are, which space and sampler it runs), not about
processes or trained models: they run the CLI's code in this process, on the test process's one private Ray
(``private_ray``), with the synthetic trainable (reports like a real trial, trains nothing); what the CLI prints
(its notes, ``search list``, a refusal) is still checked, through ``capsys`` or :func:`tests.conftest.in_process`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest

from benchmarks.synthetic import synthetic_trainable
from search import commands
from search.cli import main
from tests.conftest import in_process, read_study_table
from tests.search.test_cli_errors import assert_user_error, snapshot
from tests.search.test_sweep import check_agreement, run_options

pytestmark = pytest.mark.slow

COMMON = ("--max-epochs", "1", "--limit", "48", "--seed", "0", "--concurrency", "1")


def test_a_copied_study_extends_in_place_and_the_original_is_untouched(
    tmp_path: Path, tiny_space: Path, private_ray: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The copy resumes with the trainable the original started with (Ray restores a run only with that one)."""
    first, second = tmp_path / "cluster", tmp_path / "laptop"
    trainable = synthetic_trainable()
    opts = run_options("--space", str(tiny_space), "--study", "r1", "--root", str(first), "--samples", "2",
                       "--sampler", "random", *COMMON)
    code = commands.run(opts, trainable=trainable)
    out, err = capsys.readouterr()
    assert code == 0, out[-3000:] + err[-3000:]
    meta = json.loads((first / "r1" / "study.json").read_text())
    assert meta["storage"] == "sqlite:///optuna.db"  # relative to the study folder, not an absolute path
    # Whole in optuna.db once the run returns, though this process lives on: its WAL log folded in and removed
    # (left open, the log would be folded in whenever the connections are collected, changing the folder later).
    assert sorted(p.name for p in (first / "r1").glob("optuna.db*")) == ["optuna.db"]
    second.mkdir()
    shutil.copytree(first / "r1", second / "r1")
    original = snapshot(first)

    # The space file changes after the study started (a pull, an edit): the study keeps its own space.
    tiny_space.write_text(tiny_space.read_text().replace('choices: [4, 16]', 'choices: [64, 128]'))
    code = commands.resume("r1", str(second), 4, trainable=trainable)
    out, err = capsys.readouterr()
    assert code == 0, out[-3000:] + err[-3000:]
    assert "has changed since the study started; continuing with the space stored in study.json" in out

    assert snapshot(first) == original  # byte for byte: the copy wrote nothing into the original
    trials = check_agreement(second, "r1", 4)
    assert set(trials["latent_dim"]) <= {4, 16}
    assert len(optuna.load_study(study_name="r1", storage=f"sqlite:///{first / 'r1' / 'optuna.db'}").trials) == 2

    # A moved study (its old folder gone) reports and lists from where it is now.
    moved = tmp_path / "moved"
    shutil.move(str(second), str(moved))
    listing = in_process(main, "list", "--root", str(moved))
    assert listing.returncode == 0 and "r1" in listing.stdout
    refused = in_process(main, "resume", "--study", "r1", "--root", str(moved), "--samples", "4")
    assert_user_error(refused, "already has 4 trials", "--samples 4")


def test_a_grid_study_ends_when_the_grid_is_exhausted(
    tmp_path: Path, private_ray: None, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tmp_path / "grid.yaml"
    space.write_text(
        "samples: 9\n"
        "fixed: {task: reconstruct, data: embedded, image_size: 16, max_epochs: 1, batch_size: 16, kernel_size: 3,"
        " filters: '4-8', lr: 3.0e-3}\n"
        "params:\n  latent_dim: {choices: [4, 8], role: scientific}\n  skip: {choices: [false, true]}\n"
    )
    opts = run_options("--space", str(space), "--study", "g1", "--root", str(tmp_path), "--sampler", "grid",
                       "--max-failures", "0", *COMMON)
    code = commands.run(opts, trainable=synthetic_trainable())
    out, err = capsys.readouterr()
    assert code == 0, out[-3000:] + err[-3000:]
    assert "has 4 points; running 4 trials instead of 9" in out
    trials = check_agreement(tmp_path, "g1", 4)
    assert (trials["status"] == "COMPLETE").all()
    assert sorted(zip(trials["latent_dim"], trials["skip"], strict=True)) == [(4, False), (4, True), (8, False),
                                                                              (8, True)]
    assert not list(tmp_path.glob("g1/ray/run-*/trial_*/error.txt"))
    assert json.loads((tmp_path / "g1" / "study.json").read_text())["status"] == "done"
    assert read_study_table(tmp_path / "g1" / "history.csv")["trial_id"].nunique() == 4
