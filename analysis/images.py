"""The best model on test images: input | prediction | ground truth, as colour images in [0, 1].

The highest-ranked leaderboard trial that has a saved model (``results/<study>/models/<trial>.keras``) is
loaded and run on a few test images of the study's own dataset, split with the study's split seed (so they
are images it never trained on). TensorFlow is imported here, lazily, so that everything else in a report stays
fast. A missing or unreadable model or dataset omits the grid with a note; it is never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cae.errors import CaesweepError
from results import StudyPaths

GRID_IMAGES = 6  # rows of the grid: a seeded random subset of the test split
DEFAULT_NOISE = 0.1  # cae.config.TrainConfig's denoise noise, for trial tables without a noise column


@dataclass(frozen=True)
class ImageGrid:
    """Rows of (input, prediction, ground truth) RGB images in [0, 1], each ``(n, S, S, 3)``."""

    trial_id: str
    rank: int
    architecture: str
    task: str
    inputs: np.ndarray
    predictions: np.ndarray
    truths: np.ndarray
    mse: np.ndarray  # per image, in the task's reference space on [-1, 1] (as test_mse is)


def best_model_grid(
    paths: StudyPaths, meta: dict[str, Any], board: pd.DataFrame, trials: pd.DataFrame, n: int = GRID_IMAGES
) -> tuple[ImageGrid | None, str]:
    """The grid of the best leaderboard trial with a saved model, or ``None`` and why it is omitted."""
    if board.empty:
        return None, "The image grid is omitted: no trial has finished yet."
    for _, entry in board.iterrows():
        if paths.model_path(entry["trial_id"]).is_file():
            break
    else:
        return None, (
            f"The image grid is omitted: none of the {len(board)} leaderboard trials has a saved model "
            f"in {paths.models_dir}."
        )
    row = trials[trials["trial_id"] == entry["trial_id"]].iloc[0]
    setting = {k: _setting(row, meta, k) for k in ("task", "data", "image_size", "noise")}
    # The split is the study's (older studies split with the training seed); the test noise of a denoising
    # trial was drawn from the trial's own training seed (cae.training.prepare), so it is drawn from it here.
    split_seed = int(meta.get("split_seed", meta.get("seed")) or 0)
    noise_seed = int(_setting(row, meta, "seed"))
    try:
        images = _predict(paths, entry["trial_id"], setting, split_seed, noise_seed, n)
    except (CaesweepError, OSError, ValueError) as exc:
        return None, f"The image grid is omitted: trial {entry['trial_id']}'s model could not be run ({exc})."
    grid = ImageGrid(entry["trial_id"], int(entry["rank"]), str(entry["architecture"]), setting["task"], *images)
    note = "" if grid.rank == 1 else f"Trial #1 has no saved model; the grid shows #{grid.rank}, the best that has one."
    return grid, note


def _setting(row: pd.Series, meta: dict[str, Any], key: str) -> Any:
    value = row.get(key)
    if value is None or pd.isna(value):
        value = meta.get(key)
    defaults = {"task": "reconstruct", "data": "embedded", "image_size": 32, "noise": DEFAULT_NOISE, "seed": 0}
    return defaults[key] if value is None else value


def _predict(
    paths: StudyPaths, trial_id: str, setting: dict[str, Any], split_seed: int, noise_seed: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from cae.data import load_dataset
    from cae.tasks import get_task

    task = get_task(str(setting["task"]))
    data = load_dataset(str(setting["data"]), image_size=int(setting["image_size"]), seed=split_seed, limit=n)
    pair = task.make_pair(data.test[:n], noise=float(setting["noise"]), seed=noise_seed + 2)

    import cae.losses  # noqa: F401  (registers the custom losses so the model loads)
    from cae.runtime import keras

    model = keras.models.load_model(paths.model_path(trial_id), compile=False)
    predicted = np.asarray(model.predict(pair.x, verbose=0))
    prediction, truth = task.to_rgb(pair.x, predicted), task.to_rgb(pair.x, pair.y)
    mse = np.mean((task.to_reference(pair.x, predicted) - task.to_reference(pair.x, pair.y)) ** 2, axis=(1, 2, 3))
    return _unit(task.input_rgb(pair.x)), _unit(prediction), _unit(truth), mse


def _unit(images: np.ndarray) -> np.ndarray:
    return np.clip((images + 1.0) / 2.0, 0.0, 1.0)
