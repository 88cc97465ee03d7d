"""The PCA baseline: the optimal linear autoencoder with as many numbers in its code as the CAE's latent.

Why it is needed: the trivial reconstruction baseline (2x down/up-sampling) keeps a quarter of the numbers
(768 of 3,072 at 32 px RGB), more than any latent the spaces allow, so every sensible CAE "loses" to it. PCA
with ``k = latent_dim`` components, fitted on the training split, is the best any *linear* encoder and
decoder with a ``k``-number code can do on the training images (Eckart-Young; Baldi & Hornik 1989), so
``skill_pca = 1 - test_mse / pca_mse`` says what convolutions and non-linearities buy at the same code size.

What PCA sees, per task (always the task's native arrays; its output is mapped to the reference space and
clipped exactly like a model's prediction, then scored with the same MSE, PSNR and SSIM functions):

- ``reconstruct``, ``reconstruct-gray``: fitted on the training images, a test image is projected onto the
  top ``k`` components and back;
- ``denoise``: fitted on the *clean* training images, the *noisy* test input is projected (the classic
  linear PCA denoiser: keep the ``k`` directions in which clean images vary most) and compared with the
  clean test image;
- colorization: no PCA baseline (the input is not the target, so a code size means nothing): NaN.

A model with skip connections passes encoder features around its bottleneck, so its code is larger than
``latent_dim``: the caller reports its PCA numbers flagged ``pca_matched = False`` (not compression-matched).

Cost: fitting (the training split's covariance, or its Gram matrix when there are fewer images than values
per image, and an eigendecomposition) is done once per process, dataset and task, keeping every component,
so any ``k`` is then one projection of the test split; both are cached, keyed on the dataset's fingerprint
(hashed once when the dataset is built, see :class:`cae.data.Dataset`), so a later trial finds them
without touching the arrays. A Ray worker reuses its process across trials, so a sweep fits once per
worker, not once per trial. The fit holds ``min(n, D)^2`` float64
values (75 MB for 32x32 RGB), so it suits image sizes up to 32 px RGB or 64 px gray on large datasets.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cae.errors import CaesweepError
from cae.losses import mse_np, psnr_np, ssim_np

if TYPE_CHECKING:
    from cae.training import Prepared

# Directions whose variance is below this fraction of the largest are numerical noise (the null space of the
# centred training data): they are dropped, so k is capped at the data's rank.
RANK_TOLERANCE = 1e-10
_MAX_FITS = 3  # fits kept per process (reconstruct and denoise share one: both fit the clean images)
_FITS: OrderedDict[tuple[str, str], PCAFit] = OrderedDict()
_SCORES: dict[tuple[str, int], dict[str, float]] = {}
PCA_KEYS = ("pca_k", "pca_mse", "pca_psnr", "pca_ssim")


@dataclass(frozen=True)
class PCAFit:
    """Principal components of a set of images (float64): the mean and orthonormal axes by decreasing variance."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (rank, D): the principal axes, one per row
    variances: np.ndarray  # (rank,): the variance along each axis (ddof 1, as scikit-learn's explained_variance_)

    @property
    def rank(self) -> int:
        """How many components the training data supports (at most ``min(n - 1, D)``)."""
        return len(self.components)

    def reconstruct(self, images: np.ndarray, k: int) -> np.ndarray:
        """Project ``images`` onto the top ``min(k, rank)`` components and back (float32, same shape)."""
        top = self.components[:k]
        flat = images.reshape(len(images), -1).astype(np.float64) - self.mean
        return ((flat @ top.T) @ top + self.mean).astype(np.float32).reshape(images.shape)


def fit_pca(images: np.ndarray) -> PCAFit:
    """Fit every principal component of ``images`` (``(n, ...)``, each flattened to ``D`` values).

    With ``n >= D`` the ``D x D`` covariance is decomposed; otherwise the ``n x n`` Gram matrix, whose
    eigenvectors map to the same axes (``V = X^T U / sqrt(lambda)``). Either way the work is
    ``O(n D min(n, D))`` and the axes equal scikit-learn's ``PCA(svd_solver="full")`` up to sign.
    """
    if len(images) < 2:
        raise CaesweepError(f"PCA needs at least 2 training images, got {len(images)}")
    centred = images.reshape(len(images), -1).astype(np.float64)
    mean = centred.mean(axis=0)
    centred -= mean  # in place: one float64 copy of the training split (141 MB at 32 px), not two
    n, d = centred.shape
    if n >= d:
        values, vectors = np.linalg.eigh(centred.T @ centred)
        values, axes = values[::-1], vectors[:, ::-1].T
    else:
        values, vectors = np.linalg.eigh(centred @ centred.T)
        values, vectors = values[::-1], vectors[:, ::-1]
        kept = values > RANK_TOLERANCE * max(values[0], 0.0)
        values, vectors = values[kept], vectors[:, kept]
        axes = (centred.T @ vectors / np.sqrt(values)).T
    kept = values > RANK_TOLERANCE * max(values[0], 0.0)
    return PCAFit(mean=mean, components=np.ascontiguousarray(axes[kept]), variances=values[kept] / (n - 1))


def pca_scores(prepared: Prepared, k: int) -> dict[str, float]:
    """The PCA baseline's test scores with ``k`` components (``pca_k``, ``pca_mse``, ``pca_psnr``, ``pca_ssim``).

    ``pca_k`` is the number of components used: ``k``, or the rank of the training data when that is
    smaller. Colorization tasks get NaN. Fits and scores are cached per process (see the module docstring).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise CaesweepError(f"the PCA baseline needs a positive number of components, got {k!r}")
    task, train, test, truth = prepared.task, prepared.train, prepared.test, prepared.test_reference
    if task.kind == "colorize":
        return dict.fromkeys(PCA_KEYS, math.nan)
    key = (prepared.key, int(k))
    if key not in _SCORES:
        # Tasks that encode their targets alike (reconstruct and denoise: the clean RGB images) share a fit.
        fit = _fit(train.y, (prepared.data_fingerprint, task._encode.__qualname__))
        used = min(int(k), fit.rank)
        pred = task.to_reference(test.x, fit.reconstruct(test.x, used))
        _SCORES[key] = {
            "pca_k": float(used),
            "pca_mse": mse_np(pred, truth),
            "pca_psnr": psnr_np(pred, truth),
            "pca_ssim": ssim_np(pred, truth),
        }
    return dict(_SCORES[key])


def _fit(images: np.ndarray, key: tuple[str, str]) -> PCAFit:
    """The cached fit of ``images`` (the training targets of one dataset and task, named by ``key``)."""
    if key in _FITS:
        _FITS.move_to_end(key)
    else:
        _FITS[key] = fit_pca(images)
        while len(_FITS) > _MAX_FITS:
            _FITS.popitem(last=False)
    return _FITS[key]
