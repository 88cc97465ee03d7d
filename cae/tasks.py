"""Tasks: what a CAE maps from and to, how predictions go back to a common space, and the trivial baseline.

A task turns RGB images in [-1, 1] into (input, target) arrays in its *native* space, and maps a prediction
back into its *reference* space, where every task of a kind is scored the same way:

- colorization (``colorize-rgb``, ``colorize-yuv``, ``colorize-lab``) is scored in RGB after joining the
  **true** luminance with the predicted chroma and clipping, so the three colour spaces compare fairly
  (a lower native MSE in YUV can simply be chroma's smaller variance);
- ``reconstruct`` and ``denoise`` are scored in RGB, ``reconstruct-gray`` in luminance.

Each task also defines a trivial predictor on the same images, the baseline that a model's *skill*
(``1 - MSE / MSE_trivial``) is measured against: 2x down/up-sampling for reconstruction, the gray image as
colour (zero chroma) for colorization, the noisy input itself for denoising. Down/up-sampling keeps a quarter
of the values (768 of 3,072 at 32 px RGB), more than any latent the spaces allow, so it is a sanity floor, not
a fair rival: reconstruction and denoising are judged against PCA at the model's code size
(:mod:`cae.baselines`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cae import colors
from cae.errors import TaskError


@dataclass(frozen=True)
class Pair:
    """Native-space arrays for one split: model input ``x`` and target ``y``."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Task:
    """One input/target transform with its inverse back to the reference space."""

    name: str
    kind: str  # "reconstruct", "colorize" or "denoise"
    in_channels: int
    out_channels: int
    description: str
    _encode: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # rgb -> (x, y), noise-free
    _to_reference: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (x, y_pred) -> reference space
    _native_trivial: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (x, y) -> trivial native prediction

    def make_pair(self, rgb: np.ndarray, *, noise: float = 0.0, seed: int = 0) -> Pair:
        """Native (input, target) for RGB images in [-1,1]; ``noise``/``seed`` are used by ``denoise`` only."""
        x, y = self._encode(rgb)
        if self.kind == "denoise" and noise > 0:
            rng = np.random.default_rng(seed)
            x = np.clip(x + rng.normal(0.0, noise, size=x.shape), -1.0, 1.0).astype(np.float32)
        return Pair(x=x, y=y)

    def reference(self, rgb: np.ndarray) -> np.ndarray:
        """The ground truth in the space predictions are scored in."""
        return colors.rgb_to_gray(rgb) if self.name == "reconstruct-gray" else np.asarray(rgb, dtype=np.float32)

    def to_reference(self, x: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """A native prediction -> the reference space (colorization joins the true luminance from ``x``)."""
        return np.clip(self._to_reference(x, y_pred), -1.0, 1.0).astype(np.float32, copy=False)

    def trivial(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The trivial baseline's prediction, mapped to the reference space like a model's prediction."""
        return self.to_reference(x, self.native_trivial(x, y))

    def native_trivial(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The trivial baseline's prediction in the native target space."""
        return self._native_trivial(x, y).astype(np.float32)

    def to_rgb(self, x: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """A prediction as an RGB image for display (gray tasks repeat the single channel)."""
        ref = self.to_reference(x, y_pred)
        return colors.gray_to_rgb(ref) if ref.shape[-1] == 1 else ref

    def input_rgb(self, x: np.ndarray) -> np.ndarray:
        """The model input as an RGB image for display."""
        if x.shape[-1] == 1:
            return colors.gray_to_rgb(x)
        return x


def down_up(images: np.ndarray) -> np.ndarray:
    """2x average down-sampling then nearest up-sampling: the trivial reconstruction baseline (1/4 of the values)."""
    n, h, w, c = images.shape
    small = images.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    return np.repeat(np.repeat(small, 2, axis=1), 2, axis=2)


def _gray_as_colour(x: np.ndarray, _: np.ndarray) -> np.ndarray:
    # The gray input (2Y-1) copied to R, G and B: an RGB image with that luminance and zero chroma.
    return colors.gray_to_rgb(x)


def _join_yuv(x: np.ndarray, uv: np.ndarray) -> np.ndarray:
    return colors.yuv_to_rgb(np.concatenate([x, uv], axis=-1))


def _join_lab(x: np.ndarray, ab: np.ndarray) -> np.ndarray:
    return colors.lab_to_rgb(np.concatenate([x, ab], axis=-1))


def _join_rgb(x: np.ndarray, rgb_pred: np.ndarray) -> np.ndarray:
    # Keep the predicted chroma, replace the predicted luminance by the true one (from x).
    yuv = colors.rgb_to_yuv(np.clip(rgb_pred, -1.0, 1.0))
    yuv[..., :1] = x
    return colors.yuv_to_rgb(yuv)


def _lab_pair(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lab = colors.rgb_to_lab(rgb)
    return lab[..., :1], lab[..., 1:]


def _yuv_pair(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    yuv = colors.rgb_to_yuv(rgb)
    return yuv[..., :1], yuv[..., 1:]


def _zeros_like_target(_: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.zeros_like(y)


def _same(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # No copy: input and target share the (possibly read-only, shared-memory) dataset array.
    same = np.asarray(rgb, dtype=np.float32)
    return same, same


def _gray_same(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gray = colors.rgb_to_gray(rgb)
    return gray, gray


def _prediction(_: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return y_pred


def _down_up_x(x: np.ndarray, _: np.ndarray) -> np.ndarray:
    return down_up(x)


def _noisy_input(x: np.ndarray, _: np.ndarray) -> np.ndarray:
    return x


# What each task kind's trivial baseline is, in words (summaries and ``cae.data describe``).
TRIVIAL_NAMES = {
    "reconstruct": "2x down/up-sampling, 1/4 of the values",
    "colorize": "gray image, zero chroma",
    "denoise": "the noisy input",
}

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("reconstruct", "reconstruct", 3, 3, "RGB -> RGB", _same, _prediction, _down_up_x),
        Task("reconstruct-gray", "reconstruct", 1, 1, "gray -> gray", _gray_same, _prediction, _down_up_x),
        Task(
            "colorize-rgb", "colorize", 1, 3, "gray -> RGB (scored with the true luminance)",
            lambda rgb: (colors.rgb_to_gray(rgb), rgb.astype(np.float32)),
            _join_rgb, _gray_as_colour,
        ),
        Task(
            "colorize-yuv", "colorize", 1, 2, "Y -> UV (2Y-1, U/0.436, V/0.615)",
            _yuv_pair, _join_yuv, _zeros_like_target,
        ),
        Task(
            "colorize-lab", "colorize", 1, 2, "L -> ab (L/50-1, ab/128)",
            _lab_pair, _join_lab, _zeros_like_target,
        ),
        Task("denoise", "denoise", 3, 3, "noisy RGB -> RGB", _same, _prediction, _noisy_input),
    )
}


def get_task(name: str) -> Task:
    """Look a task up by name; an unknown name raises :class:`TaskError` listing the valid ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise TaskError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None
