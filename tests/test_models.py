"""Tests for cae.models and cae.config: shapes for every task and architecture, validation, flat configs."""

from __future__ import annotations

import numpy as np
import pytest

from cae import models
from cae.config import ModelConfig, RunConfig, TrainConfig, filters_from_growth, from_flat, parse_filters
from cae.errors import ModelConfigError
from cae.runtime import keras
from cae.tasks import TASKS, get_task

SMALL = ModelConfig(filters=(4, 8), latent_dim=8)


def layers_of(model: keras.Model, kind: type) -> list:
    return [layer for layer in model.layers if type(layer) is kind]


@pytest.mark.parametrize("name", TASKS)
def test_every_task_gets_its_input_and_output_channels(name: str) -> None:
    task = get_task(name)
    model = models.build_model(SMALL, 16, task.in_channels, task.out_channels)
    assert model.input_shape == (None, 16, 16, task.in_channels)
    assert model.output_shape == (None, 16, 16, task.out_channels)


# Together these cover depth 1-4, 1-2 convolutions, kernel 3/5, skips, batch norm and both up-samplers.
ARCHITECTURES = [
    (ModelConfig(filters=(4,), latent_dim=8), 8),
    (ModelConfig(filters=(4, 8), kernel_size=5, latent_dim=16), 16),
    (ModelConfig(filters=(4, 8, 8), convs_per_level=2, latent_dim=8), 16),
    (ModelConfig(filters=(4, 4, 8, 8), latent_dim=4), 16),
    (ModelConfig(filters=(4, 8), skip=True, latent_dim=8), 16),
    (ModelConfig(filters=(4, 8, 16), batch_norm=True, convs_per_level=2, latent_dim=8), 32),
    (ModelConfig(filters=(4, 8), upsample="transpose", kernel_size=5, latent_dim=8), 16),
    (ModelConfig(filters=(4, 8, 8, 8), upsample="transpose", skip=True, batch_norm=True, latent_dim=8), 16),
    (ModelConfig(filters=(4, 8), convs_per_level=2, kernel_size=5, skip=True, activation="gelu", latent_dim=8), 32),
]


@pytest.mark.parametrize(("config", "size"), ARCHITECTURES, ids=[f"{c.describe()}@{s}" for c, s in ARCHITECTURES])
def test_architectures_have_the_configured_layers_and_shapes(config: ModelConfig, size: int) -> None:
    model = models.build_model(config, size, 1, 3)
    assert model.output_shape == (None, size, size, 3)
    depth, convs = config.depth, config.convs_per_level
    conv2d = keras.layers.Conv2D
    assert len(layers_of(model, conv2d)) == 2 * depth * convs + 1  # encoder, decoder, output
    assert len(layers_of(model, keras.layers.MaxPooling2D)) == depth
    assert len(layers_of(model, keras.layers.BatchNormalization)) == (2 * depth * convs if config.batch_norm else 0)
    assert len(layers_of(model, keras.layers.Concatenate)) == (depth if config.skip else 0)
    upsamplers = keras.layers.Conv2DTranspose if config.upsample == "transpose" else keras.layers.UpSampling2D
    assert len(layers_of(model, upsamplers)) == depth
    for layer in layers_of(model, conv2d)[:-1]:
        assert layer.kernel_size == (config.kernel_size, config.kernel_size)
    side = size // 2**depth
    assert model.get_layer("unflatten").output.shape[1:] == (side, side, config.filters[-1])
    assert model.get_layer("latent").units == config.latent_dim
    assert model.get_layer("latent").output.shape[1:] == (config.latent_dim,)


def test_the_output_is_tanh_and_stays_in_minus_one_to_one() -> None:
    keras.utils.set_random_seed(0)
    model = models.build_model(ModelConfig(filters=(4, 8), latent_dim=8, skip=True), 16, 3, 3)
    assert model.get_layer("output").activation is keras.activations.tanh
    x = np.random.default_rng(0).normal(0, 1000, (4, 16, 16, 3)).astype(np.float32)  # drive it to saturation
    y = np.asarray(model(x, training=False))
    assert y.min() >= -1.0 and y.max() <= 1.0
    assert np.abs(y).max() > 0.99


def test_the_latent_layer_is_a_real_bottleneck() -> None:
    model = models.build_model(ModelConfig(filters=(4, 8), latent_dim=3), 16, 3, 3)
    latent = model.get_layer("latent")
    assert isinstance(latent, keras.layers.Dense) and latent.units == 3
    # Without skips every path from the image to the output goes through the 3 latent units.
    sub = keras.Model(model.get_layer("latent_act").output, model.output)
    assert sub.input_shape == (None, 3)


@pytest.mark.parametrize(
    ("config", "size", "message"),
    [
        (ModelConfig(filters=(4, 8, 8, 8, 8)), 16, "depth 5 needs images of at least 32px but the image size is 16"),
        (ModelConfig(filters=(4, 8), latent_dim=0), 16, "latent_dim 0 must be between 1 and 65536"),
        (ModelConfig(filters=(4, 8), kernel_size=4), 16, "kernel_size 4 must be odd"),
        (ModelConfig(filters=()), 16, "filters is empty"),
        (ModelConfig(filters=(4, 0)), 16, "filters 4-0 must all be >= 1"),
        (ModelConfig(filters=(4, 8), convs_per_level=0), 16, "convs_per_level 0 must be between 1 and 4"),
        (ModelConfig(filters=(4, 8), activation="sigmoidal"), 16, "activation 'sigmoidal' is unknown"),
        (ModelConfig(filters=(4, 8), upsample="bilinear"), 16, "upsample 'bilinear' is unknown"),
        (ModelConfig(filters=(4, 8)), 24, "image size 24 must be a power of two"),
    ],
)
def test_impossible_configs_are_refused_before_anything_is_built(
    config: ModelConfig, size: int, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def build_started(*args: object, **kwargs: object) -> None:
        raise AssertionError("build_model started building before validating")

    monkeypatch.setattr(models.keras, "Input", build_started)
    with pytest.raises(ModelConfigError, match=message):
        models.build_model(config, size, 3, 3)


# --- flat configs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("filters", ["32-48-64", "32,48,64", " 32 - 48 - 64 ", [32, 48, 64], (32, 48, 64)])
def test_filters_are_parsed_from_every_spelling(filters: object) -> None:
    assert parse_filters(filters) == (32, 48, 64)  # type: ignore[arg-type]
    assert from_flat({"filters": filters}).model.filters == (32, 48, 64)


def test_filters_from_base_and_growth() -> None:
    assert filters_from_growth(32, 1.5, 3) == (32, 48, 72)
    run = from_flat({"filters_base": 16, "filters_growth": 2, "depth": 4})
    assert run.model.filters == (16, 32, 64, 128) and run.model.depth == 4
    with pytest.raises(ModelConfigError, match="all must be positive"):
        from_flat({"filters_base": 0, "depth": 2})


def test_from_flat_fills_defaults_and_coerces_types() -> None:
    run = from_flat(
        {"filters": "8-16", "image_size": 16, "latent_dim": 64.0, "lr": 1, "batch_norm": "true", "max_epochs": 7,
         "patience": None, "task": "colorize-lab"}
    )
    assert run.model == ModelConfig(filters=(8, 16), latent_dim=64, batch_norm=True)
    assert run.train == TrainConfig(task="colorize-lab", lr=1.0, epochs=7, patience=None)
    assert (run.data, run.image_size) == ("embedded", 16)
    assert isinstance(run.model.latent_dim, int) and isinstance(run.train.lr, float)
    assert from_flat(run.to_flat()) == run
    assert from_flat({}) == RunConfig()


@pytest.mark.parametrize(
    ("flat", "message"),
    [
        ({"dropout": 0.1}, r"unknown config keys \['dropout'\]"),
        ({"filters": "32-48", "depth": 3}, "depth 3 does not match filters 32-48"),
        ({"filters": "32-abc"}, "filters '32-abc' is not a list of integers"),
        ({"latent_dim": 64.5}, "latent_dim=64.5 is not an integer"),
        ({"skip": "maybe"}, "skip='maybe' is not a boolean"),
        ({"filters": "8-16-32-64-128-256", "image_size": 16}, "depth 6 needs images of at least 64px"),
        ({"epochs": 0}, "epochs 0 must be a positive integer"),
        ({"lr": float("nan")}, "learning rate nan must be a positive number"),
    ],
)
def test_from_flat_refuses_bad_configs(flat: dict, message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        from_flat(flat)


@pytest.mark.parametrize("key", ["epochs", "latent_dim"])
def test_from_flat_refuses_an_infinite_integer(key: str) -> None:
    with pytest.raises(ModelConfigError, match="not an integer"):
        from_flat({key: float("inf")})
