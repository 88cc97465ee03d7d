"""A model's size before it is built: its parameter count and the megabytes of its weights, from the config alone.

A sweep refuses a configuration over ``--max-params`` or ``--max-weights-mb`` before any training, in the driver,
which never imports TensorFlow: so the count is computed here layer by layer, exactly as :func:`cae.models.
build_model` builds the model (a test compares it with Keras's own count for every kind of layer the builder
uses). Batch normalisation's moving mean and variance are counted, as Keras's ``count_params`` does.
"""

from __future__ import annotations

from cae.config import ModelConfig

WEIGHT_BYTES = 4  # float32 weights (also under mixed precision: Keras keeps the variables in float32)


def count_params(config: ModelConfig, image_size: int, in_channels: int, out_channels: int) -> int:
    """The number of parameters of the autoencoder ``build_model`` makes of these arguments."""
    k2 = config.kernel_size**2

    def block(channels: int, filters: int) -> int:
        total = 0
        for _ in range(config.convs_per_level):
            total += k2 * channels * filters + (4 * filters if config.batch_norm else filters)  # BN: 4 per filter
            channels = filters
        return total

    total, channels = 0, in_channels
    for filters in config.filters:
        total += block(channels, filters)
        channels = filters
    side = image_size // 2**config.depth
    flat = side * side * config.filters[-1]
    total += flat * config.latent_dim + config.latent_dim  # the latent Dense
    total += config.latent_dim * flat + flat  # the expanding Dense
    for filters in reversed(config.filters):
        if config.upsample == "transpose":
            total += k2 * channels * filters + filters
            channels = filters
        if config.skip:
            channels += filters  # the encoder's feature map of the same level, concatenated
        total += block(channels, filters)
        channels = filters
    return total + k2 * channels * out_channels + out_channels  # the output convolution


def weights_mb(params: int) -> float:
    """Megabytes (10^6 bytes) of ``params`` float32 weights."""
    return params * WEIGHT_BYTES / 1e6


def size_refusal(flat: dict, max_params: int | None, max_weights_mb: float | None) -> str | None:
    """Why a flat trial config is over a size cap (its count and the cap), None when it is within both caps."""
    from cae.config import from_flat
    from cae.tasks import get_task

    run = from_flat(flat)
    task = get_task(run.train.task)
    params = count_params(run.model, run.image_size, task.in_channels, task.out_channels)
    if max_params is not None and params > max_params:
        return f"{run.model.describe()} has {params:,} parameters, over --max-params {max_params:,}"
    if max_weights_mb is not None and weights_mb(params) > max_weights_mb:
        return (f"{run.model.describe()} has {weights_mb(params):.3g} MB of float32 weights, over "
                f"--max-weights-mb {max_weights_mb:g}")
    return None
