"""The precision benchmark: its paired comparison on known numbers, and a tiny real run (the result's shape, not
the speed or the quality: the benchmark measures those, tests do not assert them)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmarks import definitions, precision, sweep_overhead
from benchmarks.definitions import RunSettings
from benchmarks.evidence import NOT_DISTINGUISHABLE
from cae import precision as precisions
from cae.errors import CaesweepError, UsageError
from spaces import space_from_dict


def test_the_paired_difference_and_its_interval() -> None:
    row = precision.paired([0.020, 0.022, 0.021], [0.021, 0.023, 0.022])  # mixed higher by 0.001 at every seed
    assert row["n"] == 3 and row["diff"] == pytest.approx(0.001)
    assert row["diff_low"] == pytest.approx(0.001) and row["diff_high"] == pytest.approx(0.001)  # no spread
    assert row["diff_relative"] == pytest.approx(0.001 / 0.021)
    assert row["float32_sd"] == pytest.approx(0.001)
    assert precision.verdict(row) == "differs: mixed higher by 4.8%"
    noisy = precision.paired([0.020, 0.022, 0.021], [0.021, 0.021, 0.021])
    # differences +0.001, -0.001, 0: mean 0, s.d. 0.001, t(0.975, 2) = 4.303
    assert noisy["diff_high"] == pytest.approx(4.303 * 0.001 / math.sqrt(3), rel=1e-3)
    assert precision.verdict(noisy) == NOT_DISTINGUISHABLE
    assert precision.verdict(precision.paired([0.02], [0.03])).startswith("UNDECIDED")


def test_the_quality_table_judges_ssim_losses_by_their_ssim_too() -> None:
    rows = []
    for config in precision.CONFIGS:
        for seed in range(2):
            for policy, offset in (("float32", 0.0), ("mixed_bfloat16", 0.001 * seed)):
                rows.append({"config": config, "seed": seed, "policy": policy, "test_mse": 0.02 + offset,
                             "test_ssim": 0.6 - offset, "images_per_second": 100.0 if policy == "float32" else 190.0})
    table = precision.quality(pd.DataFrame(rows))
    assert table[["config", "metric"]].values.tolist() == [
        ["colorize-yuv 8-16 z64", "test_mse"], ["reconstruct 8-16 z16", "test_mse"],
        ["reconstruct 8-16 z16, SSIM loss", "test_mse"], ["reconstruct 8-16 z16, SSIM loss", "test_ssim"]]
    assert table["speed_ratio"].tolist() == pytest.approx([1.9] * 4)
    assert table["diff"].tolist() == pytest.approx([0.0005, 0.0005, 0.0005, -0.0005])
    assert set(table["verdict"]) == {NOT_DISTINGUISHABLE}


def test_a_tiny_run_writes_its_tables(tmp_path: Path) -> None:
    definition = definitions.get("precision")
    plan = definition.plan(RunSettings(root=tmp_path, budget=2, seeds=2, limit=24, image_size=8))
    result = definition.runner(plan)
    assert result["files"] == ["result.json", "table.md"]
    saved = json.loads((plan.folder / "result.json").read_text())
    assert saved["mixed_policy"] in ("mixed_bfloat16", "mixed_float16")
    assert saved["auto_choice"]["reason"].startswith("auto: ")
    speed = saved["speed"]
    assert speed["float32_images_per_second"] > 0 and speed["mixed_images_per_second"] > 0
    assert speed["image_size"] == 8 and speed["rounds"] == 1
    assert len(saved["trainings"]) == len(precision.CONFIGS) * 2 * 2
    assert {(r["config"], r["seed"], r["policy"]) for r in saved["trainings"]} == {
        (c, s, p) for c in precision.CONFIGS for s in range(2) for p in ("float32", saved["mixed_policy"])}
    assert [row["n"] for row in saved["quality"]] == [2, 2, 2, 2]
    table = (plan.folder / "table.md").read_text()
    assert "mixed - float32 (95 % CI)" in table and "flattened:" in table


def test_the_benchmarks_take_a_precision_for_their_trainings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = definitions.get("seed-colorization").plan(RunSettings(root=tmp_path, precision="auto"))
    assert plan.precision == "auto"
    space = definitions.derived_space(plan.definition.space, precision=plan.precision)
    assert space.fixed["precision"] == "auto"
    assert definitions.get("overhead").plan(RunSettings(root=tmp_path)).precision is None  # the space's: float32
    fixed = space_from_dict({**yaml.safe_load(sweep_overhead.space_text("mixed_bfloat16")), "name": "o"}).fixed
    assert fixed["precision"] == "mixed_bfloat16"
    assert sweep_overhead.space_text(None) == sweep_overhead.SPACE
    monkeypatch.setattr(precisions, "detect", lambda tensorflow=False: precisions.Hardware())  # a CPU
    for value, message in (("mixed_float16", "needs a GPU"), ("half", "precision 'half' is unknown")):
        with pytest.raises(CaesweepError, match=message):
            definitions.get("overhead").plan(RunSettings(root=tmp_path, precision=value))
    with pytest.raises(UsageError, match="does not take --precision"):
        definitions.get("engines").plan(RunSettings(root=tmp_path, precision="float32"))
    assert not any(tmp_path.iterdir())
