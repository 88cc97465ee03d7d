"""The model builder: one validated :class:`~cae.config.ModelConfig` -> one Keras convolutional autoencoder.

Encoder: ``depth`` levels, each ``convs_per_level`` convolutions (optionally batch-normalised) then a
2x max-pool. Bottleneck: the deepest feature map is flattened into a dense latent vector of
``latent_dim`` units and expanded back (a real bottleneck: every bit of the image passes through it unless
skip connections are on). Decoder: the mirror image, up-sampling by nearest neighbour + convolution or by a
strided transposed convolution, optionally concatenating the encoder's feature map of the same size
(U-Net-like skips). Output: a convolution with the task's channel count and ``tanh``, matching targets
in [-1, 1].
"""

from __future__ import annotations

from cae.config import ModelConfig
from cae.runtime import keras

layers = keras.layers


def _conv_block(x: keras.KerasTensor, filters: int, config: ModelConfig, name: str) -> keras.KerasTensor:
    for i in range(config.convs_per_level):
        x = layers.Conv2D(
            filters, config.kernel_size, padding="same", use_bias=not config.batch_norm, name=f"{name}_conv{i}"
        )(x)
        if config.batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.Activation(config.activation, name=f"{name}_act{i}")(x)
    return x


def build_model(
    config: ModelConfig, image_size: int, in_channels: int, out_channels: int, name: str = "cae"
) -> keras.Model:
    """Build (but do not compile) the autoencoder; raises ModelConfigError for an impossible config."""
    config.validate(image_size)
    inputs = keras.Input((image_size, image_size, in_channels), name="image")
    x = inputs
    skips = []
    for level, filters in enumerate(config.filters):
        x = _conv_block(x, filters, config, f"enc{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)

    side = image_size // 2**config.depth
    deepest = config.filters[-1]
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(config.latent_dim, name="latent")(x)
    x = layers.Activation(config.activation, name="latent_act")(x)
    x = layers.Dense(side * side * deepest, name="expand")(x)
    x = layers.Activation(config.activation, name="expand_act")(x)
    x = layers.Reshape((side, side, deepest), name="unflatten")(x)

    for level in reversed(range(config.depth)):
        filters = config.filters[level]
        if config.upsample == "transpose":
            x = layers.Conv2DTranspose(
                filters, config.kernel_size, strides=2, padding="same", name=f"up{level}"
            )(x)
        else:
            x = layers.UpSampling2D(2, name=f"up{level}")(x)
        if config.skip:
            x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_block(x, filters, config, f"dec{level}")

    outputs = layers.Conv2D(out_channels, config.kernel_size, padding="same", activation="tanh", name="output")(
        x
    )
    return keras.Model(inputs, outputs, name=name)


def load_model(path: str) -> keras.Model:
    """Load a saved ``.keras`` CAE (registers caesweep's custom losses and metrics first)."""
    import cae.losses  # noqa: F401

    return keras.models.load_model(path)
