"""The model builder: one validated :class:`~cae.config.ModelConfig` -> one Keras convolutional autoencoder.

Encoder: ``depth`` levels, each ``convs_per_level`` convolutions (optionally batch-normalised) then a
2x max-pool. Bottleneck: the deepest feature map is flattened into a dense latent vector of
``latent_dim`` units and expanded back (a real bottleneck: every bit of the image passes through it unless
skip connections are on). Decoder: the mirror image, up-sampling by nearest neighbour + convolution or by a
strided transposed convolution, optionally concatenating the encoder's feature map of the same size
(U-Net-like skips). Output: a convolution with the task's channel count and ``tanh``, matching targets
in [-1, 1].

The model is built in Keras's global dtype policy (:func:`cae.precision.policy_scope` sets it for one run)
except its output layer, which is always float32: under a mixed policy every other layer computes in 16 bits
(weights in float32), and the prediction, the loss and the metrics stay float32. :func:`load_model` gives
back a float32 model whatever policy it was trained in.
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

    # float32 whatever the policy. The last convolution is 3 % of the 32-48-64 model's multiply-adds; in float32 it
    # cost no measurable speed under mixed_bfloat16 (32 px, batch 64, 3 alternating rounds on a shared machine:
    # median 790 images/s, against 777 with only its tanh in float32).
    outputs = layers.Conv2D(
        out_channels, config.kernel_size, padding="same", activation="tanh", name="output", dtype="float32"
    )(x)
    return keras.Model(inputs, outputs, name=name)


def load_model(path: str) -> keras.Model:
    """Load a saved ``.keras`` CAE to run in float32, whatever precision it was trained in.

    Registers caesweep's custom losses, metrics and optimizer first. A model trained in float32 comes back as saved
    (compiled, with its optimizer state); one trained in a mixed policy comes back as its float32 twin (the same
    weights, which a mixed policy keeps in float32 anyway; every layer computing in float32), compiled with its
    loss and metrics for evaluation, without an optimizer: continue training from a checkpoint
    (:func:`cae.checkpoint.load`) instead.
    """
    import cae.losses  # noqa: F401
    import cae.optimizers  # noqa: F401

    return as_float32(keras.models.load_model(path))


def as_float32(model: keras.Model) -> keras.Model:
    """``model`` itself when every layer computes in float32, else a float32 copy with the same weights."""
    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    twin = keras.models.clone_model(
        model, clone_function=lambda layer: layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})
    )
    twin.set_weights(model.get_weights())
    if model.compiled:
        from cae.losses import METRICS

        twin.compile(loss=model.loss, metrics=list(METRICS))
    return twin
