"""Hand-built study folders, written through the ``results`` writer API like a sweep would write them.

Helpers for the analysis tests (the fixtures that use them live in ``conftest.py``).

``realistic`` is a 20-trial reconstruction study (14 COMPLETE, 3 PRUNED, 2 FAILED, 1 RUNNING) with epoch
histories and one saved (untrained) Keras model for the best trial, so the image grid is drawn too. The
``make_study`` factory builds the edge cases (every trial failed, a single trial, missing metrics, HTML in
values) from a few rows.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cae.config import from_flat
from results import (
    COMPLETE,
    FAILED,
    PRUNED,
    RUNNING,
    history_frame,
    study_paths,
    trials_frame,
    write_meta,
    write_tables,
)

ROLES = {
    "filters": "scientific", "kernel_size": "scientific", "latent_dim": "scientific", "skip": "scientific",
    "lr": "nuisance", "batch_size": "nuisance", "loss": "fixed", "task": "fixed",
}
SEARCHED = ["filters", "kernel_size", "latent_dim", "skip", "lr", "batch_size"]
# The stored space the realistic study ran (study.json holds it): lr is sampled on a log scale.
SPACE = {
    "name": "quick", "fixed": {"task": "reconstruct", "data": "embedded", "image_size": 32, "max_epochs": 6},
    "params": {
        "filters": {"choices": ["16-32", "32-48-64", "8-16-32", "8-16"], "role": "scientific"},
        "kernel_size": {"choices": [3, 5, 7], "role": "scientific"},
        "latent_dim": {"choices": [16, 64, 128], "role": "scientific"},
        "skip": {"choices": [False, True], "role": "scientific"},
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "role": "nuisance"},
        "batch_size": {"choices": [32, 64], "role": "nuisance"},
    },
}
FIXED = {"task": "reconstruct", "data": "embedded", "image_size": 32, "max_epochs": 6, "loss": "mse", "seed": 0}
HOSTILE_ERROR = "ValueError: <img src=x onerror=alert(1)>"  # a failure message that must show as text
BEST_MODEL = "t10"  # the best trial of the realistic study (the lowest val_mse by construction)

StudyFactory = Callable[..., Path]


def meta_for(name: str, **overrides: Any) -> dict[str, Any]:
    """A study.json as the sweep writes it."""
    meta = {
        "name": name, "engine": "ray", "space_name": "quick", "space": SPACE, "roles": ROLES, "params": SEARCHED,
        "task": "reconstruct", "data": "embedded", "image_size": 32, "sampler": "tpe", "scheduler": "asha",
        "metric": "val_mse", "mode": "min", "objectives": [{"metric": "val_mse", "mode": "min"}], "samples": 20,
        "max_epochs": 6, "seed": 0, "status": "done", "versions": {}, "git_commit": "abc", "created_at": "2025-01-01",
        "updated_at": "2025-01-01",
    }
    meta.update(overrides)
    return meta


def write_study(
    root: Path, name: str, trials: Iterable[Mapping[str, Any]], history: Iterable[Mapping[str, Any]] = (),
    **meta: Any,
) -> Path:
    """Write a study folder under ``root`` through the results API; returns the folder."""
    paths = study_paths(name, root)
    write_meta(paths, meta_for(name, **meta))
    write_tables(paths, trials_frame(trials), history_frame(history))
    return paths.folder


def trial(number: int, status: str = COMPLETE, **values: Any) -> dict[str, Any]:
    """One trial row: fixed settings, a 32-48-64 default architecture and metrics consistent with val_mse."""
    row: dict[str, Any] = {
        "trial_id": f"t{number:02d}", "number": number, "status": status, **FIXED,
        "filters": "32-48-64", "kernel_size": 3, "latent_dim": 64, "skip": False, "lr": 1e-3, "batch_size": 64,
    }
    row.update(values)
    config = from_flat({k: row[k] for k in ("filters", "kernel_size", "latent_dim", "skip")})
    row.setdefault("architecture", config.model.describe())
    if status == COMPLETE and "val_mse" in row:
        val = row["val_mse"]
        row.setdefault("test_mse", round(val * 1.05, 6))
        row.setdefault("test_psnr", round(10 * np.log10(4 / row["test_mse"]), 4))
        row.setdefault("test_ssim", round(1 - 3 * val, 4))
        row.setdefault("trivial_mse", 0.02)
        row.setdefault("skill", round(1 - row["test_mse"] / 0.02, 6))
        row.setdefault("epochs", 6)
    row.setdefault("params", 10_000 * len(str(row["filters"]).split("-")) + 50 * row["latent_dim"])
    row.setdefault("train_seconds", 10.0 + number)
    return row


def curve(trial_id: str, final: float, epochs: int) -> list[dict[str, Any]]:
    """A decreasing learning curve ending near ``final`` (train slightly below val)."""
    return [
        {"trial_id": trial_id, "epoch": e, "mse": final * (1 + 2 / e) * 0.95, "val_mse": final * (1 + 2 / e),
         "loss": final * (1 + 2 / e) * 0.95, "val_loss": final * (1 + 2 / e), "seconds": 2.0}
        for e in range(1, epochs + 1)
    ]


def realistic_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """20 trials: val_mse grows with kernel size and falls with latent size; lr has a sweet spot at 1e-3."""
    rng = np.random.default_rng(0)
    filters = ["16-32", "32-48-64", "8-16-32"]
    rows, history = [], []
    for n in range(20):
        kernel, latent = (3, 5, 7)[n % 3], (16, 64, 128)[(n // 3) % 3]
        lr = float(10 ** rng.uniform(-4, -2))
        values = dict(filters=filters[(n // 2) % 3], kernel_size=kernel, latent_dim=latent, skip=n % 4 == 0,
                      lr=round(lr, 6), batch_size=(32, 64)[n % 2])
        if n == 10:  # the best trial, with the architecture of the saved model; neither the smallest nor the fastest
            values.update(filters="8-16", kernel_size=3, latent_dim=16, skip=False, params=40_000, train_seconds=25.0)
        if n < 14:
            val = 0.004 + 0.001 * kernel - 0.00001 * latent + 0.002 * abs(np.log10(lr) + 3) + rng.uniform(0, 5e-4)
            val = 0.003 if n == 10 else round(val, 6)
            rows.append(trial(n, COMPLETE, val_mse=val, **values))
            history += curve(f"t{n:02d}", val, 6)
        elif n < 17:
            rows.append(trial(n, PRUNED, error="pruned by ASHA at epoch 2", epochs=2, **values))
            history += curve(f"t{n:02d}", 0.02, 2)
        elif n < 19:
            reason = "DivergedError: loss became nan at epoch 1" if n == 17 else HOSTILE_ERROR
            rows.append(trial(n, FAILED, error=reason, epochs=1, **values))
        else:
            rows.append(trial(n, RUNNING, train_seconds=None, **values))
    return rows, history


def repeat(original: Mapping[str, Any], index: int, status: str = COMPLETE, **values: Any) -> dict[str, Any]:
    """A seed repeat of ``original`` as ``python -m search confirm`` records it: the same hyperparameters, the
    training seed ``100 + index``, number -1, ``repeat_of`` the original's trial_id, and its own scores."""
    settings = {k: original[k] for k in ("filters", "kernel_size", "latent_dim", "skip", "lr", "batch_size")}
    row = trial(int(original["number"]), status, **settings, **values)
    row.update(trial_id=f"{original['trial_id']}-r{index}", number=-1, repeat_of=original["trial_id"], seed=100 + index)
    return row


CONFIRM = {"top": 4, "repeats": 3}


def confirmed_rows() -> list[dict[str, Any]]:
    """Six search trials, the top four re-trained with 3 new seeds each (``confirm`` = :data:`CONFIRM`).

    test_mse, the selected (search) run first, then its fresh seeds: t00 0.011 | 0.013, 0.014, 0.015 (the search
    ranked it first on val; its own run was lucky: its fresh seeds are all worse); t01 0.010 | 0.011, 0.012, 0.013
    (the best fresh mean); t02 0.020 | 0.020, 0.021, 0.022, apart from the best; each fresh triple is the "1, 2,
    3" known answer scaled (std 0.001). t03 has two repeats still running and one failed (no fresh seed); t04 and
    t05 were not repeated.
    """
    rows = [
        trial(0, val_mse=0.010, test_mse=0.011, filters="32-48-64", latent_dim=128),
        trial(1, val_mse=0.011, test_mse=0.010, filters="16-32", latent_dim=128),
        trial(2, val_mse=0.012, test_mse=0.020, filters="8-16", latent_dim=64),
        trial(3, val_mse=0.013, test_mse=0.021, filters="8-16", latent_dim=16),
        trial(4, val_mse=0.014, test_mse=0.022, kernel_size=5),
        trial(5, val_mse=0.015, test_mse=0.023, kernel_size=7),
    ]
    scores = {"t00": (0.013, 0.014, 0.015), "t01": (0.011, 0.012, 0.013), "t02": (0.020, 0.021, 0.022)}
    repeats = []
    for original in rows[:3]:
        for index, mse in enumerate(scores[original["trial_id"]], start=1):
            repeats.append(repeat(original, index, COMPLETE, val_mse=mse, test_mse=mse))
    repeats += [repeat(rows[3], 1, RUNNING), repeat(rows[3], 2, RUNNING), repeat(rows[3], 3, FAILED, error="OOM")]
    return rows + repeats


def save_tiny_model(path: Path) -> None:
    """An untrained 8-16 CAE for 32x32 RGB, saved where the sweep saves a trial's best model."""
    from cae.config import ModelConfig
    from cae.models import build_model

    path.parent.mkdir(parents=True, exist_ok=True)
    build_model(ModelConfig(filters=(8, 16), latent_dim=16), 32, 3, 3).save(path)


@dataclass(frozen=True)
class Ran:
    """What one in-process ``python -m analysis.report`` run left behind."""

    code: int
    out: str
    err: str
    folder: Path


def run_report(argv: list[str], folder: Path) -> Ran:
    """Run the CLI in-process (as ``cae.cli.run`` does for ``python -m``), capturing stdout and stderr."""
    from analysis.report import main
    from cae.cli import run

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(main, argv)
    return Ran(code, out.getvalue(), err.getvalue(), folder)
