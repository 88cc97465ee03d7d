"""A sweep in a chosen precision: every trial trains in it, its row says the policy it trained in (what auto
resolved to on its node), and a space that searches the precision itself refuses --precision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search.cli import main
from tests.conftest import in_process, read_study_table
from tests.search.test_cli_errors import assert_user_error

pytestmark = pytest.mark.slow


def test_every_trial_trains_in_the_precision_asked_and_its_row_says_so(
    tmp_path: Path, tiny_space: Path, private_ray: None
) -> None:
    proc = in_process(
        main, "run", "--space", str(tiny_space), "--study", "bf", "--root", str(tmp_path), "--samples", "2",
        "--max-epochs", "1", "--limit", "16", "--sampler", "random", "--scheduler", "none", "--concurrency", "1",
        "--precision", "mixed_bfloat16",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials = read_study_table(tmp_path / "bf" / "trials.csv")
    assert len(trials) == 2 and (trials["status"] == "COMPLETE").all()
    assert (trials["precision"] == "mixed_bfloat16").all()  # what was asked
    assert (trials["policy"] == "mixed_bfloat16").all()  # what each trained in
    assert trials["test_mse"].notna().all()
    meta = json.loads((tmp_path / "bf" / "study.json").read_text())
    assert meta["options"]["precision"] == "mixed_bfloat16"


def test_a_space_that_searches_the_precision_refuses_the_option(tmp_path: Path, tiny_space: Path) -> None:
    space = tmp_path / "precisions.yaml"
    space.write_text(tiny_space.read_text() + "  precision: {choices: [float32, mixed_bfloat16], role: nuisance}\n")
    proc = in_process(main, "run", "--space", str(space), "--study", "p", "--root", str(tmp_path / "root"),
                      "--precision", "auto")
    assert_user_error(proc, "searches the precision itself", "drop --precision")
    assert not (tmp_path / "root").exists()
