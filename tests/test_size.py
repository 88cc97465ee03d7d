"""A model's size from its config (``cae.size``) is exactly Keras's count of the model the builder makes."""

from __future__ import annotations

import pytest

from cae.config import ModelConfig
from cae.size import count_params, weights_mb

CASES = [
    (ModelConfig(filters=(8, 16), latent_dim=16), 16, 3, 3),
    (ModelConfig(filters=(4, 8, 8), convs_per_level=2, latent_dim=8, batch_norm=True), 16, 1, 2),
    (ModelConfig(filters=(4, 8), kernel_size=5, skip=True, latent_dim=32), 32, 1, 3),
    (ModelConfig(filters=(8, 16, 32), upsample="transpose", skip=True, batch_norm=True, convs_per_level=2,
                 latent_dim=64), 32, 3, 3),
    (ModelConfig(filters=(6,), upsample="transpose", latent_dim=5, kernel_size=3), 8, 1, 1),
]


@pytest.mark.parametrize(("config", "size", "inputs", "outputs"), CASES)
def test_the_count_is_keras_own(config: ModelConfig, size: int, inputs: int, outputs: int) -> None:
    from cae.models import build_model

    model = build_model(config, size, inputs, outputs)
    assert count_params(config, size, inputs, outputs) == model.count_params()


def test_weights_are_four_bytes_each() -> None:
    assert weights_mb(250_000) == 1.0
