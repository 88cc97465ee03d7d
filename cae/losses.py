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


SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _gaussian_1d(size: int, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian whose outer product is ``tf.image.ssim``'s 2-D window."""
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-0.5 * np.square(coords) / sigma**2)
    return (g / g.sum()).astype(np.float32)


def _ssim_map(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Per-image SSIM of [-1,1] images, computed on [0,1] with max_val 1.

    The same number as ``tf.image.ssim`` (Gaussian window, VALID borders, K1 0.01, K2 0.03), but the
    Gaussian is applied as two 1-D passes instead of one 2-D window: 2 x 11 instead of 121 multiplies per
    pixel, so scoring and the SSIM loss cost a fraction of TensorFlow's version.
    """
    size = min(SSIM_FILTER, int(y_true.shape[1] or SSIM_FILTER), int(y_true.shape[2] or SSIM_FILTER))
    channels = int(y_true.shape[-1])
    window = _gaussian_1d(size)
    rows = tf.constant(np.tile(window.reshape(size, 1, 1, 1), (1, 1, channels, 1)))
    cols = tf.constant(np.tile(window.reshape(1, size, 1, 1), (1, 1, channels, 1)))

    def blur(x: tf.Tensor) -> tf.Tensor:
        x = tf.nn.depthwise_conv2d(x, cols, strides=[1, 1, 1, 1], padding="VALID")
        return tf.nn.depthwise_conv2d(x, rows, strides=[1, 1, 1, 1], padding="VALID")

    a = (tf.cast(y_true, tf.float32) + 1.0) * 0.5
    b = (tf.cast(y_pred, tf.float32) + 1.0) * 0.5
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    mean_a, mean_b = blur(a), blur(b)
    num0 = mean_a * mean_b * 2.0
    den0 = tf.square(mean_a) + tf.square(mean_b)
    luminance = (num0 + c1) / (den0 + c1)
    contrast_structure = (blur(a * b) * 2.0 - num0 + c2) / (blur(tf.square(a) + tf.square(b)) - den0 + c2)
    return tf.reduce_mean(luminance * contrast_structure, axis=[1, 2, 3])


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


def squared_errors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a - b) ** 2`` in float64, elementwise: one array made, not four (the same values as casting both first)."""
    errors = np.subtract(a, b, dtype=np.float64)
    return np.square(errors, out=errors)


def mse_np(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error over every pixel and channel."""
    return float(np.mean(squared_errors(a, b)))


def psnr_np(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-image PSNR (dB) for [-1,1] images, max_val 2; identical images count as 100 dB."""
    err = np.mean(squared_errors(a, b), axis=(1, 2, 3))
    per_image = np.where(err > 0, 10.0 * np.log10(4.0 / np.maximum(err, 1e-20)), 100.0)
    return float(np.mean(per_image))


# ssim_np is traced, once per image shape and kept for the process (a sweep's worker scores every trial's epochs
# with it): 0.017-0.021 s instead of 0.027-0.034 s eagerly for 512 32x32 RGB images (medians of 21, 2 CPU cores,
# AMD EPYC), after one trace of 0.14 s. Always traced, never eager first: the graph's value differs from the eager
# one by float rounding (about 1e-6 relative: its ops may be fused), and the same run must score the same whatever
# ran before it in the process.
_SSIM_TRACED: dict[tuple[int, ...], Callable[[tf.Tensor, tf.Tensor], tf.Tensor]] = {}


def _ssim_call(image_shape: tuple[int, ...]) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    if image_shape not in _SSIM_TRACED:
        spec = tf.TensorSpec([None, *image_shape], tf.float32)
        _SSIM_TRACED[image_shape] = tf.function(_ssim_map, input_signature=[spec, spec], autograph=False)
    return _SSIM_TRACED[image_shape]


def ssim_np(a: np.ndarray, b: np.ndarray, batch: int = 1024) -> float:
    """Mean per-image SSIM of [-1,1] images (computed on [0,1], max_val 1)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)  # what _ssim_map casts them to anyway
    call = _ssim_call(tuple(a.shape[1:]))
    values = [call(a[i : i + batch], b[i : i + batch]).numpy() for i in range(0, len(a), batch)]
    return float(np.mean(np.concatenate(values)))
