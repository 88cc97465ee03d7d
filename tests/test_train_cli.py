"""End-to-end tests of ``python -m cae.train``: two tiny real trainings and every user error it must refuse.

Only the two trainings import TensorFlow (they run side by side, to halve the wait); every error case must be
refused before TensorFlow is imported, which one extra subprocess checks for all of them at once. The error cases
run in this process, as ``python -m cae.train`` would run them; one of them also runs the real module.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from cae.data import load_dataset
from cae.tasks import get_task
from cae.train import main as train_main
from tests.search.test_cli_errors import as_python_m

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--limit", "64", "--image-size", "16", "--epochs", "1", "--filters", "8,16", "--latent-dim", "16"]
REQUIRED_KEYS = {
    "test_mse", "test_mse_ci95", "test_psnr", "test_ssim", "trivial_mse", "skill", "skill_ci95", "pca_k", "pca_mse",
    "pca_psnr", "pca_ssim",
    "skill_pca", "pca_matched", "val_mse", "val_loss", "val_native_mse", "val_psnr", "val_ssim", "params", "epochs",
    "best_epoch", "train_seconds", "images_per_second",
}


@dataclass
class Trained:
    process: subprocess.CompletedProcess
    json_path: Path
    model_path: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trained]:
    """``colorize-yuv`` (with ``--save``) and ``reconstruct``, run concurrently."""
    out = tmp_path_factory.mktemp("cli")
    runs = {}
    for task in ("colorize-yuv", "reconstruct"):
        json_path, model_path = out / f"{task}.json", out / f"{task}.keras"
        argv = [*TINY, "--task", task, "--json", str(json_path)]
        if task == "colorize-yuv":
            argv += ["--save", str(model_path)]
        process = subprocess.Popen(
            [sys.executable, "-m", "cae.train", *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        runs[task] = (process, argv, json_path, model_path)
    done = {}
    try:
        for task, (process, argv, json_path, model_path) in runs.items():
            stdout, stderr = process.communicate(timeout=300)
            completed = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
            done[task] = Trained(completed, json_path, model_path)
    finally:
        for process, *_ in runs.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    return done


@pytest.mark.parametrize("task", ["colorize-yuv", "reconstruct"])
def test_a_tiny_training_writes_the_json_result(task: str, trained: dict[str, Trained]) -> None:
    run = trained[task]
    assert run.process.returncode == 0, run.process.stderr
    assert "Traceback" not in run.process.stderr
    assert "test     MSE" in run.process.stdout and "skill" in run.process.stdout
    result = json.loads(run.json_path.read_text())
    assert set(result) >= REQUIRED_KEYS
    assert result["epochs"] == 1 and len(result["history"]) == 1
    assert result["config"]["task"] == task and result["config"]["filters"] == "8-16"
    assert result["params"] > 0 and result["train_seconds"] > 0 and result["images_per_second"] > 0
    for key in ("test_mse", "test_mse_ci95", "test_psnr", "test_ssim", "trivial_mse", "skill", "skill_ci95"):
        assert math.isfinite(result[key]), key
    assert result["skill"] == pytest.approx(1 - result["test_mse"] / result["trivial_mse"])
    assert 0 < result["test_mse_ci95"] < result["test_mse"]
    assert f"MSE {result['test_mse']:.5f} +/- {result['test_mse_ci95']:.5f}" in run.process.stdout
    kept = result["history"][result["best_epoch"] - 1]
    for key in ("val_mse", "val_loss", "val_native_mse", "val_psnr", "val_ssim"):
        assert result[key] == kept[key], key
    assert result["config"]["monitor"] == "val_mse" and "kept epoch 1, best val_mse" in run.process.stdout
    if task == "reconstruct":
        assert result["pca_k"] == 16 and result["pca_matched"] is True
        assert result["skill_pca"] == pytest.approx(1 - result["test_mse"] / result["pca_mse"])
        assert "PCA      MSE" in run.process.stdout and "(k = 16 components)" in run.process.stdout
    else:  # no PCA baseline for colorization: null in the (strict) JSON, said in words in the summary
        assert all(result[key] is None for key in ("pca_k", "pca_mse", "pca_psnr", "pca_ssim", "skill_pca"))
        assert "PCA      none for colorization" in run.process.stdout
    assert not trained["reconstruct"].model_path.exists()  # no --save, no model


def test_the_saved_model_loads_back_and_scores_as_reported(trained: dict[str, Trained]) -> None:
    import cae.losses  # noqa: F401  (registers the custom losses and metrics the saved model was compiled with)
    from cae.runtime import keras
    from cae.training import evaluate, prepare

    model = keras.models.load_model(trained["colorize-yuv"].model_path)
    task = get_task("colorize-yuv")
    assert model.input_shape == (None, 16, 16, task.in_channels)
    assert model.output_shape == (None, 16, 16, task.out_channels)
    # The same data as the run (embedded, seed 0, 64 per split) gives the test scores the JSON reports.
    data = load_dataset("embedded", image_size=16, seed=0, limit=64)
    scores = evaluate(model, prepare(task, data))
    reported = json.loads(trained["colorize-yuv"].json_path.read_text())
    for key in ("test_mse", "test_mse_ci95", "native_mse", "trivial_mse", "skill", "skill_ci95"):
        assert scores[key] == pytest.approx(reported[key], rel=1e-5), key


# (id, argv, a fragment the one-line message must contain); "{tmp}" is a fresh folder with an empty "empty/".
ERRORS = [
    ("unknown-task", ["--task", "colourize"], "unknown task 'colourize'; choose one of reconstruct"),
    ("unknown-dataset", ["--data", "mnist"], "unknown dataset 'mnist'"),
    ("missing-cifar", ["--data", "cifar10:/nonexistent"], "CIFAR-10 not found"),
    ("empty-folder", ["--data", "folder:{tmp}/empty"], "is empty"),
    ("too-deep", ["--filters", "8,16,32,64,128,256", "--image-size", "16"], "depth 6 needs images of at least 64px"),
    ("zero-epochs", ["--epochs", "0"], "epochs 0 must be a positive integer"),
    ("negative-epochs", ["--epochs", "-3"], "epochs -3 must be a positive integer"),
    ("zero-lr", ["--lr", "0"], "learning rate 0.0 must be a positive number"),
    ("negative-lr", ["--lr", "-0.01"], "learning rate -0.01 must be a positive number"),
    ("zero-batch", ["--batch-size", "0"], "batch size 0 must be a positive integer"),
    ("unknown-monitor", ["--monitor", "test_mse"], "argument --monitor: invalid choice: 'test_mse'"),
    ("bad-json-folder", ["--json", "{tmp}/missing/out.json"], "does not exist or is not writable"),
]


def error_argv(argv: list[str], tmp: Path) -> list[str]:
    """The case's arguments after the tiny settings, with ``{tmp}`` filled in and its empty folder made."""
    (tmp / "empty").mkdir(exist_ok=True)
    return [*TINY[:4], *(arg.replace("{tmp}", str(tmp)) for arg in argv)]


def refused_argv(argv: list[str], tmp: Path) -> tuple[list[str], Path]:
    """An error case's whole command line, which names ``--json`` (the file that must not be written)."""
    out = tmp / "result.json"
    argv = error_argv(argv, tmp)
    return (argv if "--json" in argv else [*argv, "--json", str(out)]), out


def assert_refused(process: subprocess.CompletedProcess, fragment: str, out: Path, tmp_path: Path) -> None:
    assert process.returncode == 2
    lines = process.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), process.stderr
    assert fragment in lines[0]
    assert "Traceback" not in process.stderr and process.stdout == ""
    assert not out.exists() and not (tmp_path / "missing").exists()


@pytest.mark.parametrize(("argv", "fragment"), [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_a_user_error_is_one_line_exit_2_and_writes_nothing(
    argv: list[str], fragment: str, tmp_path: Path, capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv, out = refused_argv(argv, tmp_path)
    monkeypatch.chdir(ROOT)
    assert_refused(as_python_m(capfd, caplog, train_main, *argv), fragment, out, tmp_path)


def test_python_m_cae_train_refuses_a_user_error_in_one_line(tmp_path: Path) -> None:
    """The one real ``python -m cae.train`` of the error cases: the module form itself turns a user error into one
    line and exit code 2 (``cae.cli.run``), which the cases above take as given."""
    _, argv, fragment = ERRORS[0]
    argv, out = refused_argv(argv, tmp_path)
    process = subprocess.run(
        [sys.executable, "-m", "cae.train", *argv], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert_refused(process, fragment, out, tmp_path)


def test_every_user_error_is_refused_before_tensorflow_is_imported(tmp_path: Path) -> None:
    # A subprocess: what this checks is the interpreter's (sys.modules of a fresh one), which this one cannot tell.
    cases = [error_argv(argv, tmp_path) for _, argv, _ in ERRORS]
    script = (
        "import contextlib, io, json, sys\n"
        "from cae.cli import run\n"
        "from cae.train import main\n"
        "codes = []\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    with contextlib.redirect_stderr(io.StringIO()):\n"
        "        codes.append(run(main, argv))\n"
        "print(json.dumps({'codes': codes, 'tensorflow': 'tensorflow' in sys.modules}))\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert process.returncode == 0, process.stderr
    report = json.loads(process.stdout)
    assert report == {"codes": [2] * len(cases), "tensorflow": False}
