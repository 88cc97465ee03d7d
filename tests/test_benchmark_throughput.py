"""Tests for benchmarks.train_throughput at a tiny size: the result's shape, not the speed (benchmarks measure
speed; tests do not assert it)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import train_throughput
from cae.cli import run
from cae.errors import BenchmarkError


@pytest.fixture(scope="module")
def result() -> dict:
    return train_throughput.measure(images=128, epochs=2, repeats=1, image_size=16)


def test_measure_reports_both_sides_and_their_ratio(result: dict) -> None:
    assert result["benchmark"] == "train_throughput"
    for key in ("bare_images_per_second", "suite_images_per_second", "ratio"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["ratio"] == pytest.approx(result["suite_images_per_second"] / result["bare_images_per_second"])
    for side in ("bare", "suite"):
        assert result[f"{side}_images_per_second"] == pytest.approx(128 / result[f"{side}_median_epoch_seconds"])
    assert result["target_ratio"] == 0.95 and result["meets_target"] == (result["ratio"] >= 0.95)


def test_measure_describes_its_rounds_setup_and_environment(result: dict) -> None:
    (only,) = result["rounds"]
    assert only["round"] == 1 and only["first"] == "bare"
    for side in ("bare", "suite"):
        assert only[f"{side}_seconds"] > 0
        assert only[f"{side}_images_per_second"] == pytest.approx(128 / only[f"{side}_seconds"])
        assert len(only[f"{side}_epoch_seconds"]) == 1  # epoch 2 only: epoch 1 is the untimed warm-up
    setup = result["setup"]
    assert setup["model"] == "32-48-64 k3 z128" and setup["params"] > 0
    assert (setup["train_images"], setup["image_size"], setup["epochs"], setup["timed_epochs"]) == (128, 16, 2, 1)
    assert setup["val_images"] == round(128 * 0.15 / 0.7)
    environment = result["environment"]
    assert {"started", "load_average_before", "load_average_after", "cpus", "tensorflow", "keras"} <= set(environment)
    json.dumps(result)  # JSON-friendly as it is


def test_the_report_names_both_numbers_and_the_verdict(result: dict) -> None:
    report = train_throughput.format_report(result)
    assert "bare" in report and "suite" in report and f"ratio {result['ratio']:.3f}" in report
    assert "target >= 0.95" in report


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"images": 0}, "images 0 must be a positive number"),
        ({"epochs": 1}, "epochs 1 must be at least 2"),
        ({"repeats": 0}, "repeats 0 must be a positive number"),
    ],
)
def test_a_budget_too_small_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(BenchmarkError, match=message):
        train_throughput.measure(**kwargs)


def test_the_command_line_refuses_bad_arguments_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "result.json"
    assert run(train_throughput.main, ["--epochs", "1", "--out", str(out)]) == 2
    assert run(train_throughput.main, ["--out", str(tmp_path)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors)
    assert not out.exists()
