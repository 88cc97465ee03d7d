"""Losses and metrics for images in [-1, 1], registered so saved ``.keras`` models load back.

Conventions (they matter for comparing numbers with published work):

- MSE is computed on the [-1, 1] values the model outputs;
- PSNR uses ``max_val = 2`` (the range of [-1, 1]);
- SSIM maps both images to [0, 1] first and uses ``max_val = 1``. SSIM on [-1, 1] with ``max_val = 2`` is
  *not* the same number (the stabilising constants C1, C2 assume the data range), so we never do that.

The numpy functions at the bottom score predictions outside Keras (test evaluation in the reference space).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cae.errors import ModelConfigError
from cae.runtime import keras, tf

SSIM_FILTER = 11  # Wang et al.'s Gaussian window; shrunk for images smaller than 11 px
SSIM_WEIGHT = 1.0  # weight of (1 - SSIM) in the combined "mse+ssim" loss


def _ssim_map(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Per-image SSIM of [-1,1] images, computed on [0,1] with max_val 1."""
    size = min(SSIM_FILTER, int(y_true.shape[1] or SSIM_FILTER), int(y_true.shape[2] or SSIM_FILTER))
    a = (tf.cast(y_true, tf.float32) + 1.0) * 0.5
    b = (tf.cast(y_pred, tf.float32) + 1.0) * 0.5
    return tf.image.ssim(a, b, max_val=1.0, filter_size=size)


@keras.saving.register_keras_serializable(package="caesweep")
def ssim(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """SSIM metric (higher is better), on images mapped to [0, 1]."""
    return _ssim_map(y_true, y_pred)


@keras.saving.register_keras_serializable(package="caesweep")
def psnr(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """PSNR in dB for [-1, 1] images (max_val 2)."""
    return tf.image.psnr(tf.cast(y_true, tf.float32), tf.cast(y_pred, tf.float32), max_val=2.0)


@keras.saving.register_keras_serializable(package="caesweep")
def mse(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Per-image mean squared error on [-1, 1]."""
    diff = tf.cast(y_true, tf.float32) - tf.cast(y_pred, tf.float32)
    return tf.reduce_mean(tf.square(diff), axis=[1, 2, 3])


@keras.saving.register_keras_serializable(package="caesweep")
def ssim_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """1 - SSIM, on images mapped to [0, 1]."""
    return 1.0 - _ssim_map(y_true, y_pred)


@keras.saving.register_keras_serializable(package="caesweep")
def mse_ssim_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """MSE + SSIM_WEIGHT * (1 - SSIM): pixel accuracy plus structure."""
    return mse(y_true, y_pred) + SSIM_WEIGHT * ssim_loss(y_true, y_pred)


LOSSES: dict[str, Callable[[tf.Tensor, tf.Tensor], tf.Tensor]] = {
    "mse": mse,
    "ssim": ssim_loss,
    "mse+ssim": mse_ssim_loss,
}
METRICS = (mse, psnr, ssim)  # logged as mse/psnr/ssim and val_mse/val_psnr/val_ssim


def get_loss(name: str) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    try:
        return LOSSES[name]
    except KeyError:
        raise ModelConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None


# --- scoring outside Keras -----------------------------------------------------------------------------


def mse_np(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error over every pixel and channel."""
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def psnr_np(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-image PSNR (dB) for [-1,1] images, max_val 2; identical images count as 100 dB."""
    err = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(1, 2, 3))
    per_image = np.where(err > 0, 10.0 * np.log10(4.0 / np.maximum(err, 1e-20)), 100.0)
    return float(np.mean(per_image))


def ssim_np(a: np.ndarray, b: np.ndarray, batch: int = 1024) -> float:
    """Mean per-image SSIM of [-1,1] images (computed on [0,1], max_val 1)."""
    values = [
        _ssim_map(tf.constant(a[i : i + batch]), tf.constant(b[i : i + batch])).numpy()
        for i in range(0, len(a), batch)
    ]
    return float(np.mean(np.concatenate(values)))
