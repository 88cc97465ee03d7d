"""How colourful images are: the Hasler-Süsstrunk colourfulness metric, a score beyond MSE for colorization.

MSE rewards grey-ish predictions: when a model cannot tell whether a shirt is red or blue, the prediction that
minimises the squared error is the mean of the two, a dull grey-brown. A colouriser is therefore also judged by
how colourful its predictions are next to the truth (Hasler & Süsstrunk, "Measuring colourfulness in natural
images", SPIE 2003). On sRGB values in 0-255, with ``rg = R - G`` and ``yb = (R + G) / 2 - B`` over one image's
pixels::

    M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2)

A gray image scores 0. The paper's panel found, on this scale: 15 slightly, 33 moderately, 45 averagely,
59 quite, 82 highly and 109 extremely colourful. A prediction far below its truth's colourfulness is washed out;
one far above it invents colour.
"""

from __future__ import annotations

import numpy as np

# The paper's weight of the mean chroma against its spread (fitted to the panel's ratings).
MEAN_WEIGHT = 0.3
_BATCH = 1024  # images measured at a time


def colorfulness(rgb: np.ndarray) -> np.ndarray:
    """Per image, the Hasler-Süsstrunk colourfulness of RGB images in [-1, 1] ``(N, H, W, 3)``: ``float64 (N,)``.

    Values are measured on the 0-255 scale the metric was defined on (so its thresholds apply); images are
    clipped to [-1, 1] first, as they are before being written as 8-bit files.
    """
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"colorfulness needs RGB images of shape (N, H, W, 3), got {rgb.shape}")
    if len(rgb) > _BATCH:  # bounds the float64 copies (CIFAR-10's test split would take ~0.7 GB at once)
        return np.concatenate([colorfulness(rgb[i : i + _BATCH]) for i in range(0, len(rgb), _BATCH)])
    pixels = (np.clip(rgb.astype(np.float64), -1.0, 1.0) + 1.0) * 127.5
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    rg = (r - g).reshape(len(rgb), -1)
    yb = (0.5 * (r + g) - b).reshape(len(rgb), -1)
    spread = np.sqrt(rg.var(axis=1) + yb.var(axis=1))
    mean = np.sqrt(rg.mean(axis=1) ** 2 + yb.mean(axis=1) ** 2)
    return spread + MEAN_WEIGHT * mean
