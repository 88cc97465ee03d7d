"""The overhead benchmark: its memory sampling from /proc, its ratios, the GPU item skipped without a GPU, and a
tiny real run (the result's shape, not the speed: benchmarks measure speed, tests do not assert it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import definitions, overhead, sweep_overhead
from benchmarks.definitions import RunSettings
from tests.search.conftest import sweep_env


def test_descendants_and_their_memory_are_read_from_proc() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(50 << 20); time.sleep(30)"])
    try:
        deadline = time.time() + 10
        while time.time() < deadline and overhead.read_pss(child.pid).get("Pss", 0) < 40 << 10:
            time.sleep(0.1)
        assert child.pid in overhead.descendants(os.getpid())
        tree = overhead.tree_memory(os.getpid())
        assert tree["pss_mb"] >= 40 and tree["processes"] >= 1
    finally:
        child.kill()
        child.wait()
    assert overhead.read_pss(child.pid) == {}  # gone: nothing to read, no error


def test_peak_memory_keeps_the_largest_sample() -> None:
    samples = iter([10.0, 30.0, 20.0] + [5.0] * 1000)
    with overhead.PeakMemory(root=1, every=0.01, sample=lambda pid: {
            "pss_mb": next(samples), "anon_mb": 0.0, "shmem_mb": 1.0, "processes": 3.0}) as peak:
        time.sleep(0.2)
    assert peak.peak["pss_mb"] == 30.0


SWEEP = {"steady_overhead_per_trial_seconds": 0.5, "startup_seconds": 15.0, "teardown_seconds": 5.0,
         "overhead_per_trial_seconds": 3.0, "trials": 8, "target_seconds": 2.0, "trials_to_meet_target": 14,
         "setup_seconds_per_trial": 0.1, "validation_seconds_per_trial": 0.05, "checkpoint_seconds_per_trial": 0.1,
         "eval_seconds_per_trial": 0.2, "between_trials_seconds_per_trial": 0.05}


def test_memory_result_and_ratios() -> None:
    one = {"pss_mb": 1000.0, "anon_mb": 900.0, "shmem_mb": 20.0, "processes": 8.0}
    two = {"pss_mb": 1600.0, "anon_mb": 1480.0, "shmem_mb": 21.0, "processes": 9.0}
    memory = overhead.memory_result(one, two, dataset=18.0)
    assert memory["ratio"] == pytest.approx(1.6) and memory["per_extra_trial_mb"] == pytest.approx(600.0)
    assert memory["object_store_ratio"] == pytest.approx(1.05)
    assert "skipped" in overhead.memory_result({**one, "pss_mb": 0.0}, two, 18.0)
    table = overhead.summary({"ratio": 0.97}, SWEEP, memory, {"skipped": "no GPU on this machine"})
    assert table["met"].tolist() == [True, True, None, False, None, True, True]
    assert table["value"].tolist()[:5] == [0.97, 0.5, 20.0, 3.0, 14]
    assert sweep_overhead.trials_to_meet(20.0, 0.5) == 14  # 20 / 14 + 0.5 = 1.93 < 2 <= 20 / 13 + 0.5
    assert sweep_overhead.trials_to_meet(20.0, 2.5) is None
    assert "eval 0.20 s" in overhead.steady_parts(SWEEP)
    assert overhead.dataset_mb(512, 32) == pytest.approx(18.0)


def test_gpu_sharing_is_skipped_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(overhead, "has_gpu", lambda: False)
    assert overhead.gpu_sharing(2, 16) == {"skipped": "no GPU on this machine"}


@pytest.mark.slow
def test_tiny_overhead_run_reports_every_ratio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole run for real at a tiny size: the throughput comparison and two real sweep subprocesses (two
    trials one at a time, then two at once), each with its memory sampled."""
    for key, value in sweep_env().items():
        monkeypatch.setenv(key, value)
    plan = definitions.get("overhead").plan(RunSettings(root=tmp_path, budget=2, limit=8))
    result = overhead.run(plan)
    stored = json.loads((tmp_path / "benchmarks" / "overhead" / "result.json").read_text())
    measures = [row["measure"] for row in stored["summary"]]
    assert measures[:2] == ["in-trial training throughput / bare model.fit", "sweep overhead per trial, steady (s)"]
    assert result["throughput"]["ratio"] > 0 and result["throughput"]["setup"]["train_images"] == 8
    sweep = result["sweep_overhead"]
    assert sweep["trials"] == 2 and sweep["epochs"] == 2 and sweep["startup_seconds"] > 0
    # Every trial reported its own cost outside training; the parts add up to the steady overhead.
    parts = [sweep[f"{part}_seconds_per_trial"] for part in sweep_overhead.PARTS]
    assert all(p > 0 for p in parts)
    assert sum(parts) + sweep["between_trials_seconds_per_trial"] == pytest.approx(
        sweep["steady_overhead_per_trial_seconds"])
    assert result["memory"]["single"]["pss_mb"] > 100 and result["memory"]["concurrent_peak"]["processes"] >= 3
    if not overhead.has_gpu():
        assert result["gpu"] == {"skipped": "no GPU on this machine"}
    table = (tmp_path / "benchmarks" / "overhead" / "table.md").read_text()
    assert "Ratios" in table and "between trials" in table
