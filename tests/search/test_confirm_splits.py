"""``search confirm --split-seeds K``: the best configurations trained again on K further splits of the data (the
variance which images land in val and test adds), each trial on its own split's images; bad counts refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.synthetic import synthetic_trainable
from cae.data import load_dataset
from search import commands
from search.cli import main
from search.options import SweepOptions
from search.trial import data_for, resolve_config
from tests.conftest import in_process, read_study_table
from tests.search.test_cli_errors import assert_user_error, snapshot

LIMIT = 16


def checking_its_split(expected: dict[int, str], seen: Path) -> Any:
    """The synthetic trainable, after checking that the trial got the images of its own split (by fingerprint)."""
    trainable = synthetic_trainable()

    def run(config: dict[str, Any], data: Any, settings: Any) -> None:
        flat = resolve_config(settings, config)
        fingerprint = data_for(data, flat).fingerprint
        if fingerprint != expected[int(flat["split_seed"])]:
            raise RuntimeError(f"split {flat['split_seed']} got the images of another split")
        with seen.open("a") as stream:
            stream.write(f"{flat['split_seed']},{flat['seed']}\n")
        trainable(config, data, settings)

    return run


@pytest.mark.slow
def test_confirm_trains_the_best_again_on_further_splits(tmp_path: Path, tiny_space: Path, private_ray) -> None:
    expected = {s: load_dataset("embedded", image_size=16, seed=s, limit=LIMIT).fingerprint for s in (3, 4, 5)}
    assert len(set(expected.values())) == 3  # three different splits
    seen = tmp_path / "seen.csv"
    trainable = checking_its_split(expected, seen)
    opts = SweepOptions(study="sp", space=str(tiny_space), root=str(tmp_path), samples=2, max_epochs=2,
                        limit=LIMIT, sampler="random", scheduler="none", concurrency=1, split_seed=3)
    assert commands.run(opts, trainable=trainable) == 0
    assert commands.confirm("sp", str(tmp_path), 1, 1, trainable=trainable, split_seeds=2) == 0
    table = read_study_table(tmp_path / "sp" / "trials.csv")
    search, repeats = table[table["repeat_of"].isna()], table[table["repeat_of"].notna()]
    assert (search["split_seed"] == 3).all() and (search["seed"] == 0).all()
    assert sorted(zip(repeats["split_seed"], repeats["seed"], strict=True)) == [(3, 1), (4, 0), (5, 0)]
    assert (repeats["status"] == "COMPLETE").all() and repeats["repeat_of"].nunique() == 1
    assert sorted(seen.read_text().split()) == ["3,0", "3,0", "3,1", "4,0", "5,0"]  # every trial, its own split
    # Run again: nothing is trained twice.
    assert commands.confirm("sp", str(tmp_path), 1, 1, trainable=trainable, split_seeds=2) == 0
    assert len(read_study_table(tmp_path / "sp" / "trials.csv")) == 5


@pytest.mark.parametrize("count", ["0", "-1"])
def test_a_split_count_below_one_is_refused_before_anything(tmp_path: Path, tiny_space: Path, count: str) -> None:
    folder = tmp_path / "st"
    folder.mkdir()
    (folder / "study.json").write_text("{}")
    before = snapshot(tmp_path)
    proc = in_process(main, "confirm", "--study", "st", "--root", str(tmp_path), "--split-seeds", count)
    assert_user_error(proc, f"--split-seeds {count}", "at least 1")
    assert snapshot(tmp_path) == before
