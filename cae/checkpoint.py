"""Mid-training checkpoints: everything needed to continue a run where it stopped.

Weights, optimizer state, history and early-stopping state are restored exactly; the shuffling of the
remaining epochs is drawn afresh (seeded by the run's seed and the epoch), so a resumed run is reproducible
but not bit-identical to an uninterrupted one.

A checkpoint folder holds ``model.keras`` (architecture, weights *and* optimizer state), ``best.npz``
(the best weights so far, for early stopping's restore) and ``progress.json`` (epochs done, the per-epoch
history, early-stopping state). The sweep hands these folders to Ray Tune, which keeps the latest and the
best; :func:`cae.training.train` accepts one to resume from.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FILE = "model.keras"
BEST_FILE = "best.npz"
PROGRESS_FILE = "progress.json"


@dataclass
class Progress:
    """Training state that is not in the model: what early stopping and the history need."""

    epoch: int = 0  # epochs completed
    history: list[dict[str, float]] = field(default_factory=list)
    best_val: float = math.inf  # best value so far of the monitored metric, as a loss (negated PSNR/SSIM)
    best_epoch: int = 0
    wait: int = 0  # epochs since the last improvement


def save(folder: str | Path, model: Any, progress: Progress, best_weights: list[np.ndarray] | None) -> Path:
    """Write a checkpoint into ``folder`` (created if needed) and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL_FILE)
    if best_weights is not None:
        np.savez(folder / BEST_FILE, *best_weights)
    state = asdict(progress)
    state["best_val"] = None if math.isinf(progress.best_val) else progress.best_val
    (folder / PROGRESS_FILE).write_text(json.dumps(state))
    return folder


def load(folder: str | Path) -> tuple[Any, Progress, list[np.ndarray] | None]:
    """Read a checkpoint written by :func:`save`: (compiled model with optimizer state, progress, best)."""
    import cae.losses  # noqa: F401  (registers the custom losses and metrics)
    import cae.optimizers  # noqa: F401  (registers the optimizer)
    from cae.runtime import keras

    folder = Path(folder)
    model = keras.models.load_model(folder / MODEL_FILE)
    state = json.loads((folder / PROGRESS_FILE).read_text())
    state["best_val"] = math.inf if state["best_val"] is None else state["best_val"]
    best = None
    if (folder / BEST_FILE).exists():
        with np.load(folder / BEST_FILE, allow_pickle=False) as npz:
            best = [npz[f"arr_{i}"] for i in range(len(npz.files))]
    return model, Progress(**state), best
