"""Studies are self-contained: a copied or moved study resumes and extends in its new place without touching the
original's files, and a study always runs the space it was started with, whatever its file says later. A grid
study ends when its grid is exhausted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest

from tests.conftest import read_study_table
from tests.search.conftest import search_cli
from tests.search.test_cli_errors import assert_user_error, snapshot
from tests.search.test_sweep import check_agreement

pytestmark = pytest.mark.slow

COMMON = ("--max-epochs", "1", "--limit", "48", "--seed", "0", "--concurrency", "1")


def test_a_copied_study_extends_in_place_and_the_original_is_untouched(tmp_path: Path, tiny_space: Path) -> None:
    first, second = tmp_path / "cluster", tmp_path / "laptop"
    run = search_cli("run", "--space", str(tiny_space), "--study", "r1", "--root", str(first), "--samples", "2",
                     "--sampler", "random", *COMMON)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    meta = json.loads((first / "r1" / "study.json").read_text())
    assert meta["storage"] == "sqlite:///optuna.db"  # relative to the study folder, not an absolute path
    second.mkdir()
    shutil.copytree(first / "r1", second / "r1")
    original = snapshot(first)

    # The space file changes after the study started (a pull, an edit): the study keeps its own space.
    tiny_space.write_text(tiny_space.read_text().replace('choices: [4, 16]', 'choices: [64, 128]'))
    out = search_cli("resume", "--study", "r1", "--root", str(second), "--samples", "4")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "has changed since the study started; continuing with the space stored in study.json" in out.stdout

    assert snapshot(first) == original  # byte for byte: the copy wrote nothing into the original
    trials = check_agreement(second, "r1", 4)
    assert set(trials["latent_dim"]) <= {4, 16}
    assert len(optuna.load_study(study_name="r1", storage=f"sqlite:///{first / 'r1' / 'optuna.db'}").trials) == 2

    # A moved study (its old folder gone) reports and lists from where it is now.
    moved = tmp_path / "moved"
    shutil.move(str(second), str(moved))
    listing = search_cli("list", "--root", str(moved))
    assert listing.returncode == 0 and "r1" in listing.stdout
    out = search_cli("resume", "--study", "r1", "--root", str(moved), "--samples", "4")
    assert_user_error(out, "already has 4 trials", "--samples 4")


def test_a_grid_study_ends_when_the_grid_is_exhausted(tmp_path: Path) -> None:
    space = tmp_path / "grid.yaml"
    space.write_text(
        "samples: 9\n"
        "fixed: {task: reconstruct, data: embedded, image_size: 16, max_epochs: 1, batch_size: 16, kernel_size: 3,"
        " filters: '4-8', lr: 3.0e-3}\n"
        "params:\n  latent_dim: {choices: [4, 8], role: scientific}\n  skip: {choices: [false, true]}\n"
    )
    out = search_cli("run", "--space", str(space), "--study", "g1", "--root", str(tmp_path), "--sampler", "grid",
                     "--max-failures", "0", *COMMON)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "has 4 points; running 4 trials instead of 9" in out.stdout
    trials = check_agreement(tmp_path, "g1", 4)
    assert (trials["status"] == "COMPLETE").all()
    assert sorted(zip(trials["latent_dim"], trials["skip"], strict=True)) == [(4, False), (4, True), (8, False),
                                                                              (8, True)]
    assert not list(tmp_path.glob("g1/ray/run-*/trial_*/error.txt"))
    assert json.loads((tmp_path / "g1" / "study.json").read_text())["status"] == "done"
    assert read_study_table(tmp_path / "g1" / "history.csv")["trial_id"].nunique() == 4
