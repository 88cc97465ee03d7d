"""The scale benchmark: a small study replayed through the real sweep, its deciles, and the study tables kept
incrementally during the sweep equal to a full rebuild from what Ray and Optuna recorded."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

import results
from benchmarks import scale
from benchmarks.cli import main
from search import records
from search.plan import plan_resume
from search.sweep import Sweep

TRIALS = 20
WORKERS = 4


def test_decile_rates_are_the_mean_gaps_of_each_tenth() -> None:
    gaps = [float(i) for i in range(20)]
    assert scale.decile_rates(gaps) == [0.5, 2.5, 4.5, 6.5, 8.5, 10.5, 12.5, 14.5, 16.5, 18.5]
    assert all(math.isnan(r) for r in scale.decile_rates([1.0] * 9))
    row = scale.summary_row("x", [1.0] * 10 + [3.0] * 10, 40.0, 20)
    assert (row["d1"], row["d10"], row["last_first_ratio"], row["per_trial_s"]) == (1.0, 3.0, 3.0, 2.0)


def stored_sweep(folder: Path) -> Sweep:
    paths = results.study_paths(folder.name, folder.parent)
    return plan_resume(paths, results.read_meta(paths), str(folder.parent), None)[0]


def test_scale_runs_a_study_whose_incremental_tables_equal_a_full_rebuild(
    tmp_path: Path, in_process_ray: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A relative --root (the CLI's default is `results`): the trials, which Ray runs in working folders of their
    # own, still write their probe files into it.
    monkeypatch.chdir(tmp_path)
    assert main(["run", "scale", "--trials", str(TRIALS), "--workers", str(WORKERS), "--root", "out"]) == 0
    bench = tmp_path / "out" / "benchmarks" / "scale"
    result = json.loads((bench / "result.json").read_text())
    rows = {row["what"]: row for row in result["deciles"]}
    assert list(rows) == ["caesweep sweep, 4 workers", "caesweep sweep, 4 workers, driver CPU", "Optuna alone, random",
                          "Optuna alone, tpe"]
    for row in rows.values():
        assert row["trials"] == TRIALS and all(row[f"d{i}"] >= 0 for i in range(1, 11)) and row["total_s"] > 0
    assert len((bench / f"starts-random-n{TRIALS}-k{WORKERS}.txt").read_text().split()) == TRIALS

    folder = bench / f"random-n{TRIALS}-k{WORKERS}"
    sweep = stored_sweep(folder)
    trials, history = records.collect(sweep.paths, sweep.settings, sweep.storage_url)  # what resume rebuilds
    assert len(trials) == TRIALS and (trials["status"] == results.COMPLETE).all()
    assert trials["lr"].nunique() == TRIALS  # a continuous rate: no proposal repeats an earlier one
    assert len(history) == TRIALS * 3
    # The sweep wrote its tables from the cache it kept up to date; the full rebuild gives the same files.
    assert (folder / "trials.csv").read_text() == trials.to_csv(index=False)
    assert (folder / "history.csv").read_text() == history.to_csv(index=False)

    # A cache re-reads exactly what changed: a trial cut back to its first epoch (and one that failed),
    # then grown again, gives the full rebuild's tables at each step.
    cache = records.TableCache(sweep.paths, sweep.settings, sweep.storage_url)
    cache.collect()
    trial = next(iter(records.trial_folders(sweep.paths.ray_dir)))
    lines = (trial / "result.json").read_text()
    saved = tmp_path / "result.json"
    shutil.copy(trial / "result.json", saved)
    (trial / "result.json").write_text(lines.splitlines(keepends=True)[0])
    (trial / "error.txt").write_text("RuntimeError: killed\n")
    assert_same(cache, sweep)
    shutil.copy(saved, trial / "result.json")
    (trial / "error.txt").unlink()
    assert len(assert_same(cache, sweep)[1]) == TRIALS * 3


def assert_same(cache: records.TableCache, sweep: Sweep) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cache's tables are those of a full rebuild."""
    incremental = cache.collect()
    full = records.collect(sweep.paths, sweep.settings, sweep.storage_url)
    pd.testing.assert_frame_equal(incremental[0], full[0])
    pd.testing.assert_frame_equal(incremental[1], full[1])
    return incremental
