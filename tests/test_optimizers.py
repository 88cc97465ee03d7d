"""cae.optimizers.FusedAdam: Keras's Adam made by TensorFlow's fused kernel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cae import checkpoint
from cae.optimizers import FusedAdam
from cae.runtime import keras, tf


def _steps(optimizer: keras.optimizers.Optimizer, gradients: list[list[np.ndarray]], start: list[np.ndarray]) -> list:
    variables = [keras.Variable(value) for value in start]
    optimizer.build(variables)
    for step in gradients:
        optimizer.apply([tf.constant(g) for g in step], variables)
    return [np.asarray(v) for v in (*variables, *optimizer.variables)]


@pytest.mark.parametrize("schedule", [False, True])
def test_fused_adam_makes_kerass_adam_update_to_float_rounding(schedule: bool) -> None:
    # The same gradients applied by both to the same weights (of order 1) for 5 steps of about lr = 3e-3 each:
    # weights, moments, step count and learning rate agree to a few float32 roundings of order-1 numbers (1e-6, a
    # 15,000th of what the weights moved; a wrong update, say without the bias correction, is off by 1e-3).
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(3, 3, 4, 8)).astype("float32"), rng.normal(size=(8,)).astype("float32")]
    gradients = [[rng.normal(size=w.shape).astype("float32") for w in start] for _ in range(5)]

    def rate() -> float | keras.optimizers.schedules.LearningRateSchedule:
        return keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=8) if schedule else 3e-3

    ours = _steps(FusedAdam(learning_rate=rate()), gradients, start)
    theirs = _steps(keras.optimizers.Adam(learning_rate=rate()), gradients, start)
    # the weights, the step count, the rate (a variable unless scheduled) and two moments per weight
    assert len(ours) == len(theirs) == 2 + 1 + (0 if schedule else 1) + 2 * 2
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours[0], start[0], rtol=1e-3)  # the weights did move


def test_a_model_saved_with_fused_adam_loads_with_it_and_its_state(tmp_path: Path) -> None:
    from cae.config import ModelConfig
    from cae.models import build_model
    from cae.training import compile_model

    model = build_model(ModelConfig(filters=(4,), latent_dim=4), 8, 3, 3)
    compile_model(model, 1e-3, "mse")
    assert isinstance(model.optimizer, FusedAdam)
    x = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 3)).astype("float32")
    model.fit(x, x, batch_size=4, epochs=1, verbose=0)
    checkpoint.save(tmp_path, model, checkpoint.Progress(), None)
    loaded, _, _ = checkpoint.load(tmp_path)
    assert isinstance(loaded.optimizer, FusedAdam)
    assert int(np.asarray(loaded.optimizer.iterations)) == 2
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
