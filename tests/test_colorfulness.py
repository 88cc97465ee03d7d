"""Colourfulness: the metric's known values, its place in the test scores, cae.train's JSON and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import findings
from analysis.document import leaderboard_cells
from analysis.metrics import fmt
from analysis.tables import leaderboard
from cae.colorfulness import colorfulness
from cae.data import Dataset
from results import TRIAL_COLUMNS
from results.reports import SCORE_KEYS
from tests.conftest import in_process


def _unit(pixels: np.ndarray) -> np.ndarray:
    """0-255 values -> [-1, 1]."""
    return (np.asarray(pixels, dtype=np.float32) / 127.5 - 1.0)[None]


def test_a_gray_image_scores_zero_and_a_pure_red_one_the_formula() -> None:
    gray = np.repeat(np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 8, 8, 1), 3, axis=-1)
    assert colorfulness(gray) == pytest.approx([0.0], abs=1e-9)
    red = _unit(np.broadcast_to([255, 0, 0], (4, 4, 3)))
    # rg = 255, yb = 127.5 everywhere: no spread, 0.3 * |mean|.
    assert colorfulness(red) == pytest.approx([0.3 * np.hypot(255, 127.5)])


def test_it_matches_the_paper_formula_on_random_images_and_scales_with_saturation() -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (5, 12, 10, 3)).astype(np.float32)
    expected = []
    for image in (images.astype(np.float64) + 1) * 127.5:
        rg = image[..., 0] - image[..., 1]
        yb = (image[..., 0] + image[..., 1]) / 2 - image[..., 2]
        expected.append(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    assert colorfulness(images) == pytest.approx(expected)
    # Halving every pixel's distance from its own gray level halves rg and yb, so the score halves exactly.
    gray = images @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    faded = gray[..., None] + 0.5 * (images - gray[..., None])
    assert colorfulness(faded) == pytest.approx(colorfulness(images) / 2, rel=1e-5)


def test_batches_give_the_same_values_as_one_pass() -> None:
    images = np.random.default_rng(1).uniform(-1, 1, (2100, 2, 2, 3)).astype(np.float32)
    whole = np.concatenate([colorfulness(images[:1000]), colorfulness(images[1000:])])
    assert colorfulness(images) == pytest.approx(whole)


def test_a_shape_without_three_channels_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        colorfulness(np.zeros((2, 4, 4, 1), dtype=np.float32))


def test_the_columns_are_test_scores_of_the_trial_table() -> None:
    assert {"test_colorfulness", "truth_colorfulness"} <= set(SCORE_KEYS)
    assert TRIAL_COLUMNS.index("test_mse") < TRIAL_COLUMNS.index("test_colorfulness") < TRIAL_COLUMNS.index(
        "pca_matched"
    )


def test_evaluate_scores_colourfulness_for_rgb_tasks_only(tiny_dataset: Dataset) -> None:
    from cae.config import ModelConfig, RunConfig, TrainConfig
    from cae.tasks import get_task
    from cae.training import evaluate, prepare, train

    run = RunConfig(
        model=ModelConfig(filters=(8,), latent_dim=8), train=TrainConfig(task="colorize-yuv", epochs=1), image_size=16
    )
    result = train(run, tiny_dataset)
    scores = result.test
    prepared = prepare(get_task("colorize-yuv"), tiny_dataset)
    truth = colorfulness(prepared.test_reference).mean()
    assert scores["truth_colorfulness"] == pytest.approx(truth)
    assert truth > 5  # the embedded photographs are colourful
    # The prediction: the true luminance with the model's chroma, measured as evaluate measures it.
    from cae.training import predict

    predicted = prepared.task.to_reference(prepared.test.x, predict(result.model, prepared.test.x))
    assert scores["test_colorfulness"] == pytest.approx(colorfulness(predicted).mean())
    assert 0 <= scores["test_colorfulness"] < truth  # one epoch: washed out
    gray = prepare(get_task("reconstruct-gray"), tiny_dataset)
    from cae.models import build_model

    model = build_model(ModelConfig(filters=(8,), latent_dim=8), 16, 1, 1)
    assert "test_colorfulness" not in evaluate(model, gray)


def test_cae_train_writes_both_scores_to_its_json(tmp_path: Path) -> None:
    from cae.train import main as train_main

    out = tmp_path / "run.json"
    done = in_process(
        train_main, "--task", "colorize-lab", "--limit", "32", "--image-size", "16", "--epochs", "1", "--filters", "8",
        "--latent-dim", "8", "--json", str(out),
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["truth_colorfulness"] > result["test_colorfulness"] >= 0


def _trials(task: str | None) -> pd.DataFrame:
    rows = [
        {"trial_id": "a", "status": "COMPLETE", "architecture": "8 k3 z8", "val_mse": 0.01, "test_mse": 0.02,
         "test_colorfulness": 12.0, "truth_colorfulness": 30.0, "skill": 0.3},
        {"trial_id": "b", "status": "COMPLETE", "architecture": "8 k3 z8", "val_mse": 0.02, "test_mse": 0.03,
         "test_colorfulness": 27.0, "truth_colorfulness": 30.0, "skill": 0.1},
        {"trial_id": "c", "status": "COMPLETE", "architecture": "8 k3 z8", "val_mse": 0.03, "test_mse": 0.04,
         "test_colorfulness": 45.0, "truth_colorfulness": 30.0, "skill": 0.0},
    ]
    frame = pd.DataFrame(rows).reindex(columns=[*TRIAL_COLUMNS, "lr", "batch_size", "loss"])
    if task is not None:
        frame["task"] = task
    return frame


def test_the_finding_compares_the_best_colouriser_with_the_truth() -> None:
    ranked = _trials(None)
    [sentence] = findings.colorfulness(ranked, "val_mse", "colorize-yuv")
    assert "best colorization trial a (#1 by val MSE) predicts test images of 12.0 against 30.0" in sentence
    assert "(40%: washed out, as MSE rewards)" in sentence
    assert "over 3 finished trials it ranges 12.0-45.0, the most colourful being c (#3 by val MSE)" in sentence
    # Only colorization trials are judged so; a trial table's own task column wins over the study's.
    assert findings.colorfulness(ranked, "val_mse", "reconstruct") == []
    assert findings.colorfulness(_trials("reconstruct"), "val_mse", "colorize-yuv") == []
    [one] = findings.colorfulness(ranked.iloc[1:2].reset_index(drop=True), "val_mse", "colorize-lab")
    assert "(90%: about as colourful as the truth)." in one
    [bold] = findings.colorfulness(ranked.iloc[2:3].reset_index(drop=True), "val_mse", "colorize-lab")
    assert "(150%: more colourful than the truth: it invents colour)." in bold


def test_the_leaderboard_shows_both_columns_only_when_measured() -> None:
    board = leaderboard(_trials("colorize-yuv"), "val_mse", "min", top=3)
    assert list(board["test_colorfulness"]) == [12.0, 27.0, 45.0]
    shown = leaderboard_cells(board)
    assert {"test_colorfulness", "truth_colorfulness"} <= set(shown.columns)
    assert fmt("test_colorfulness", 24.9412) == "24.9" and fmt("truth_colorfulness", 31.0) == "31.0"
    unmeasured = _trials("reconstruct").assign(test_colorfulness=np.nan, truth_colorfulness=np.nan)
    assert "test_colorfulness" not in leaderboard_cells(leaderboard(unmeasured, "val_mse", "min", top=3)).columns


def test_a_colorization_studys_report_says_it(tmp_path: Path) -> None:
    from tests.analysis.built_studies import run_report, trial, write_study

    rows = [trial(n, val_mse=v, task="colorize-lab", test_colorfulness=c, truth_colorfulness=30.0)
            for n, (v, c) in enumerate([(0.02, 9.0), (0.03, 21.0)])]
    write_study(tmp_path / "results", "colour", rows, task="colorize-lab")
    ran = run_report(["--study", "colour", "--root", str(tmp_path / "results"), "--out", str(tmp_path / "r")],
                     tmp_path / "r")
    assert ran.code == 0, ran.err
    report = (tmp_path / "r" / "report.md").read_text()
    assert ("the best colorization trial t00 (#1 by val MSE) predicts test images of 9.0 against 30.0 for the truth "
            "(30%: washed out, as MSE rewards); over 2 finished trials it ranges 9.0-21.0, the most colourful being "
            "t01 (#2 by val MSE)") in report
    assert "| test colourfulness | truth colourfulness |" in report
    board = (tmp_path / "r" / "leaderboard.csv").read_text().splitlines()
    assert "test_colorfulness" in board[0] and "truth_colorfulness" in board[0]
