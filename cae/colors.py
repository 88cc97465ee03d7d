"""Colour-space conversions on float images, scaled to fit a tanh output.

All functions take and return float32 arrays with channels last. RGB images live in [-1, 1]. The scaled
spaces are the ones the published CAE colorization work uses:

- gray / luminance: Y = 0.299 R + 0.587 G + 0.114 B (on [0,1]), stored as 2Y - 1;
- YUV (BT.601): Y as above, U / 0.436 and V / 0.615, so chroma fills [-1, 1];
- CIE LAB (D65, via scikit-image): L / 50 - 1 and ab / 128.

Each conversion has an exact inverse (up to float rounding and, for LAB, gamut clipping).
"""

from __future__ import annotations

import numpy as np
from skimage import color as skcolor

U_MAX, V_MAX = 0.436, 0.615  # BT.601 chroma extremes for RGB in [0,1]
_RGB2YUV = np.array(
    [[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]], dtype=np.float64
)
_YUV2RGB = np.linalg.inv(_RGB2YUV)
_YUV_SCALE = np.array([1.0, 1.0 / U_MAX, 1.0 / V_MAX])


def to_unit(x: np.ndarray) -> np.ndarray:
    """[-1, 1] -> [0, 1]."""
    return (x + 1.0) * 0.5


def from_unit(x: np.ndarray) -> np.ndarray:
    """[0, 1] -> [-1, 1]."""
    return x * 2.0 - 1.0


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """RGB in [-1,1] (..., 3) -> luminance 2Y-1 in [-1,1] (..., 1)."""
    y = to_unit(rgb.astype(np.float64)) @ _RGB2YUV[0]
    return from_unit(y)[..., None].astype(np.float32)


def rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """RGB in [-1,1] -> scaled YUV (2Y-1, U/0.436, V/0.615), each channel in [-1,1]."""
    yuv = to_unit(rgb.astype(np.float64)) @ _RGB2YUV.T
    yuv = yuv * _YUV_SCALE
    yuv[..., 0] = from_unit(yuv[..., 0])
    return yuv.astype(np.float32)


def yuv_to_rgb(yuv: np.ndarray) -> np.ndarray:
    """Scaled YUV -> RGB in [-1,1] (not clipped)."""
    raw = yuv.astype(np.float64) / _YUV_SCALE
    raw[..., 0] = to_unit(yuv[..., 0].astype(np.float64))
    return from_unit(raw @ _YUV2RGB.T).astype(np.float32)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """RGB in [-1,1] -> scaled LAB (L/50-1, a/128, b/128)."""
    lab = skcolor.rgb2lab(np.clip(to_unit(rgb.astype(np.float64)), 0.0, 1.0), channel_axis=-1)
    return np.concatenate([lab[..., :1] / 50.0 - 1.0, lab[..., 1:] / 128.0], axis=-1).astype(np.float32)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Scaled LAB -> RGB in [-1,1] (clipped to the sRGB gamut by scikit-image)."""
    raw = np.concatenate([(lab[..., :1].astype(np.float64) + 1.0) * 50.0, lab[..., 1:] * 128.0], axis=-1)
    return from_unit(skcolor.lab2rgb(raw, channel_axis=-1)).astype(np.float32)


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """Luminance (..., 1) -> an RGB image with that luminance and no colour."""
    return np.repeat(gray, 3, axis=-1).astype(np.float32)
