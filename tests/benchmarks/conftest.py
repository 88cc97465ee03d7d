"""Fixtures for the benchmark tests: one in-process Ray for the folder, a tiny tabular benchmark written
directly (known values, no training), and tiny definitions derived from the registered ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import definitions, tabular
from spaces import Space, load_space

TINY_TABLE_SPACE = """\
description: a tiny tabular grid (8 configurations, 3 epochs)
samples: 8
fixed: {task: reconstruct, data: embedded, image_size: 16, limit: 16, max_epochs: 3, patience: null, loss: mse}
params:
  filters: {choices: ["4-8", "8-16"], role: scientific}
  latent_dim: {low: 16, high: 32, step: 16, role: scientific}
  lr: {low: 1.0e-3, high: 3.0e-3, step: 2.0e-3, role: nuisance}
"""
TABLE_EPOCHS = 3


@pytest.fixture
def in_process_ray(private_ray: None) -> Iterator[None]:
    """The test process's private Ray (tests/conftest.py), shared with every other in-process sweep."""
    yield


@pytest.fixture(scope="package")
def tiny_table_space(tmp_path_factory: pytest.TempPathFactory) -> Space:
    path = tmp_path_factory.mktemp("spaces") / "tiny_table.yaml"
    path.write_text(TINY_TABLE_SPACE)
    return load_space(str(path))


def write_tiny_table(path: Path, space: Space, seed: int = 0) -> Path:
    """A table in the format ``build-table`` writes, with known pseudo-random values (7 significant digits)."""
    rng = np.random.default_rng(seed)
    rows = []
    configs = tabular.grid_configs(space, {})
    axes = sorted(space.grid())
    for flat in configs:
        start, floor = rng.uniform(0.1, 0.3), rng.uniform(0.01, 0.05)
        final = {"params": int(rng.integers(1000, 9000)), "best_epoch": TABLE_EPOCHS, "test_mse": floor * 1.1,
                 "test_psnr": 30.0, "test_ssim": 0.8, "native_mse": floor * 1.1, "trivial_mse": 0.02,
                 "trivial_psnr": 33.0, "trivial_ssim": 0.9, "trivial_native_mse": 0.02, "skill": 0.1}
        for epoch in range(1, TABLE_EPOCHS + 1):
            value = floor + (start - floor) * rng.uniform(0.3, 0.6) ** epoch
            record = {"loss": value * 1.05, "val_loss": value, "mse": value * 1.05, "val_mse": value,
                      "val_native_mse": value, "psnr": 20.0, "val_psnr": 20.0, "ssim": 0.5, "val_ssim": 0.5,
                      "seconds": rng.uniform(0.1, 0.5)}
            rows.append({**{a: flat[a] for a in axes}, "epoch": epoch, **record, **final})
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False, float_format=tabular.FLOAT_FORMAT)
    fixed = space.fixed
    meta = {"settings": {"task": "reconstruct", "data": fixed["data"], "image_size": fixed["image_size"],
                         "limit": fixed["limit"], "epochs": TABLE_EPOCHS, "seed": 0, "loss": "mse"},
            "axes": axes, "epochs": TABLE_EPOCHS, "configs": len(configs), "configs_built": len(configs),
            "train_images": 16, "data_summary": "embedded: 16 train / 16 val / 16 test, 16x16 RGB"}
    tabular.meta_path(path).write_text(json.dumps(meta))
    return path


@pytest.fixture(scope="package")
def tiny_table(tmp_path_factory: pytest.TempPathFactory, tiny_table_space: Space) -> Path:
    return write_tiny_table(tmp_path_factory.mktemp("table") / "tiny-16px.csv", tiny_table_space)


@pytest.fixture
def tiny_engines(tiny_table_space: Space) -> definitions.BenchmarkDefinition:
    """The engines benchmark over the tiny table's space: budgets of a few epochs."""
    return replace(definitions.get("engines"), space=tiny_table_space, tasks=("reconstruct",), budget=9,
                   min_budget=TABLE_EPOCHS)
