"""Tests of ``python -m cae.data describe``: what each split holds, and one clear line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cae.data import Dataset, bootstrap, describe, half_width, load_dataset, main
from cae.tasks import down_up, get_task
from tests.conftest import in_process

ROOT = Path(__file__).resolve().parents[1]


def test_the_json_holds_every_split_with_its_units_sources_and_trivial_baseline() -> None:
    proc = in_process(main, "describe", "--image-size", "16", "--split-seed", "3", "--json")
    assert proc.returncode == 0 and proc.stderr == ""
    out = json.loads(proc.stdout)
    data = load_dataset("embedded", image_size=16, seed=3)
    assert (out["data"], out["image_size"], out["split_seed"], out["task"]) == ("embedded", 16, 3, "reconstruct")
    assert out["trivial"].startswith("2x down/up") and out["source"] == data.source
    assert list(out["splits"]) == ["train", "val", "test"]
    for name, split in out["splits"].items():
        images = getattr(data, name)
        assert split["n"] == len(images) and split["units"] == len(np.unique(data.groups[name]))
        assert sum(split["sources"].values()) == len(images) and len(split["sources"]) == 10
        errors = np.square(down_up(images).astype(np.float64) - images).mean(axis=(1, 2, 3))
        assert split["trivial_mse"] == pytest.approx(errors.mean(), rel=1e-6)
        assert split["trivial_mse_ci95"] == pytest.approx(half_width(bootstrap(data.groups[name]).means(errors)))
        assert 0 < split["trivial_mse_ci95"] < split["trivial_mse"]
    val, test = out["splits"]["val"]["trivial_mse"], out["splits"]["test"]["trivial_mse"]
    assert out["val_test_ratio"] == pytest.approx(val / test)
    assert 0.75 <= out["val_test_ratio"] <= 1.33  # the stratified split's promise


def test_the_text_names_each_split_and_the_ratio() -> None:
    proc = in_process(main, "describe", "--task", "colorize-lab", "--image-size", "16")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "data     embedded at 16x16, split seed 0"
    assert "trivial baseline: gray image, zero chroma" in lines[2]
    assert [line.split()[0] for line in lines[4:7]] == ["train", "val", "test"]
    assert "10: " in lines[5] and "and 6 more" in lines[5] and "+/-" in lines[5]
    assert lines[-1].startswith("val/test ratio of the trivial MSE: ")


def test_denoising_is_described_on_the_noise_of_the_split(tiny_dataset: Dataset) -> None:
    """The val and test noise is the split's own (Dataset.noise_seed), the one every training seed is scored on."""
    task = get_task("denoise")
    out = describe(tiny_dataset, "denoise", noise=0.2)
    assert out["noise"] == 0.2 and out["trivial"] == "the noisy input"
    pair = task.make_pair(tiny_dataset.test, noise=0.2, seed=tiny_dataset.noise_seed("test"))
    expected = np.square(pair.x.astype(np.float64) - tiny_dataset.test).mean()
    assert out["splits"]["test"]["trivial_mse"] == pytest.approx(expected, rel=1e-9)


def test_a_folder_is_described_by_sub_folder(image_folder: Path) -> None:
    out = describe(load_dataset(f"folder:{image_folder}", image_size=16), "reconstruct")
    sources = {name: n for split in out["splits"].values() for name, n in split["sources"].items()}
    assert set(sources) <= {"./", "sub/"}
    assert sum(split["n"] for split in out["splits"].values()) == 6
    assert all(split["units"] == split["n"] for split in out["splits"].values())  # each file its own unit


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "mnist"], "error: unknown dataset 'mnist'"),
        (["--data", "folder:/nonexistent/photos"], "error: image folder /nonexistent/photos does not exist"),
        (["--data", "cifar10:/nonexistent"], "error: CIFAR-10 not found"),
        (["--split-seed", "-1"], "error: --split-seed must be a non-negative integer, got -1"),
        (["--task", "colourize"], "error: unknown task 'colourize'"),
        (["--image-size", "12"], "error: image_size must be a power of two"),
        (["--noise", "-0.1"], "error: --noise must be a finite number >= 0"),
        (["--split-seed", "x"], "error: python -m cae.data describe: argument --split-seed: invalid int value"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str) -> None:
    proc = in_process(main, "describe", *argv)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr


def test_no_command_is_a_usage_error() -> None:
    proc = in_process(main)
    assert proc.returncode == 2 and proc.stderr.startswith("error: python -m cae.data: ")


def test_python_m_cae_data_describes_without_tensorflow_and_refuses_in_one_line() -> None:
    """The real module: a description in JSON, without importing TensorFlow; a bad spec: one line, exit 2."""
    code = (
        "import runpy, sys; sys.argv = ['cae.data', 'describe', '--image-size', '16', '--json'];\n"
        "try:\n    runpy.run_module('cae.data', run_name='__main__')\n"
        "except SystemExit as end:\n    assert end.code == 0, end.code\n"
        "assert 'tensorflow' not in sys.modules, 'describe imported TensorFlow'"
    )
    ok = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert set(json.loads(ok.stdout)["splits"]) == {"train", "val", "test"}
    bad = subprocess.run(
        [sys.executable, "-m", "cae.data", "describe", "--data", "mnist"], cwd=ROOT, capture_output=True, text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("error: unknown dataset 'mnist'") and bad.stderr.count("\n") == 1
