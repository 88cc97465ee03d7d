"""Image sources behind :func:`cae.data.load_dataset`, one module per source.

- :mod:`cae.datasets.embedded`: tiles cut from colour photographs bundled with scikit-image and scikit-learn
  (the default; no download, no disk cache).
- :mod:`cae.datasets.cifar`: the official CIFAR-10 "python version" archive or its extracted folder.
- :mod:`cae.datasets.stl10`: the official STL-10 binary archive or its extracted folder.
- :mod:`cae.datasets.download`: fetching an official archive into Keras's cache, checksum verified;
  :mod:`cae.datasets.archives`: streaming a tar archive safely.
- :mod:`cae.datasets.folder`: any folder of JPEG/PNG images.

Every source returns :class:`Splits`: three disjoint ``uint8`` arrays of shape ``(N, S, S, 3)``, the
independent unit of each image, how many images each source gave, and one sentence on where the images came
from. :mod:`cae.data` validates the arguments and turns the arrays into floats.

Every source splits the same way (:func:`split_items`): units (a region of a photograph, an image file, a
CIFAR-10 image) are assigned whole, stratified by where they come from (photograph, sub-folder) and by
difficulty (:func:`image_statistics`), and of many such draws the one whose splits are most alike is kept,
so that val and test are alike and which units land where no longer dominates the test numbers.

This package only needs numpy and Pillow (scikit-image is imported lazily by the embedded source), so
importing the data layer stays fast and never pulls in TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from cae.errors import DataError

# Pillow's Lanczos filter widens its kernel when shrinking, so downscaling is anti-aliased; every resize in
# the data layer uses it so that the three sources look alike at the same image size.
RESAMPLE = Image.Resampling.LANCZOS


@dataclass(frozen=True)
class Splits:
    """Three disjoint image arrays (``uint8``, ``(N, S, S, 3)``), the unit of each image, where they came from.

    ``groups`` holds, per split, the id of each image's independent *unit*: the images of one unit were
    drawn together (the tiles of one region of a photograph) and must be resampled together; an image that
    is its own unit has an id of its own. ``origins`` counts, per split, the images of each source (a
    photograph, a sub-folder, an archive's batches).
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    source: str
    groups: tuple[np.ndarray, np.ndarray, np.ndarray]
    origins: tuple[dict[str, int], dict[str, int], dict[str, int]]


# How many stratified candidate splits one split is chosen from (see balanced_split): DRAWS, or fewer when
# there are many units, so that draws x units stays within DRAW_BUDGET (CIFAR-10's 50,000 training images get
# 20 draws, ~0.35 s; their statistics cost ~0.9 s more). Measured on the embedded tiles at 32 px, split seeds
# 0-199: the val/test ratio of the 2x down/up MSE falls within [0.75, 1.33] for every seed (95 % range
# 0.87-1.15), that of the gray-image MSE too (0.87-1.13), and so does that of an error no draw is chosen on
# (projection onto 32 principal components: 0.86-1.18); with 32 draws the first two ranges are 0.85-1.18
# and 0.82-1.19, and a photograph's share of a split strays further from its fraction. ~6 ms a split there.
DRAWS = 128
DRAW_BUDGET = 2**20

# Statistics that say how hard an image is, per image (mean over pixels and channels, values in [-1, 1]):
# its 2x down/up error (fine detail: what reconstruction must keep) and its distance from its own gray image
# (chroma: what colorization must guess). They are the trivial baselines of the two task kinds.
STATISTICS = ("down_up_mse", "gray_mse")

# BT.601 luma weights in thousandths, as in cae.colors (not imported here: it pulls in scikit-image).
_LUMA_PER_MILLE = np.array([299, 587, 114], dtype=np.int32)
_BATCH = 1024  # images per batch when computing statistics, bounding the int32 copy (12 MB at 32 px)


def image_statistics(images: np.ndarray) -> np.ndarray:
    """Per image, the :data:`STATISTICS` of ``uint8`` images ``(N, S, S, 3)``: ``float64`` ``(N, 2)``.

    Both are summed exactly in integers (a 2x2 block's down/up error is ``sum(x^2) - sum(x)^2 / 4``; the
    gray level times 1000 is ``299 R + 587 G + 114 B``), so a split chosen on them is the same on every
    machine, whatever its float summation order. 50,000 images of 32 px take ~1.3 s on these 2 cores.
    """
    out = np.empty((len(images), len(STATISTICS)))
    _, h, w, c = images.shape
    for start in range(0, len(images), _BATCH):
        x = images[start : start + _BATCH].astype(np.int32)
        n = len(x)
        pairs = x.reshape(n, h // 2, 2, w, c)
        pairs = (pairs[:, :, 0] + pairs[:, :, 1]).reshape(n, h // 2, w // 2, 2, c)
        blocks = pairs[:, :, :, 0] + pairs[:, :, :, 1]
        squares = np.einsum("nijc,nijc->n", x, x, dtype=np.int64)
        out[start : start + n, 0] = squares - np.einsum("nijc,nijc->n", blocks, blocks, dtype=np.int64) / 4
        chroma = x * 1000 - (x @ _LUMA_PER_MILLE)[..., None]
        out[start : start + n, 1] = np.einsum("nijc,nijc->n", chroma, chroma, dtype=np.int64) / 1000**2
    out *= (2 / 255) ** 2 / (h * w * c)  # from squared 0-255 steps to the mean on [-1, 1]
    return out


def balanced_split(
    strata: np.ndarray,
    sizes: np.ndarray,
    totals: np.ndarray,
    fractions: Sequence[float],
    rng: np.random.Generator,
    draws: int | None = None,
) -> np.ndarray:
    """Assign independent units (a region of a photograph, an image) to ``len(fractions)`` parts: the part of
    each unit, ``int64`` ``(U,)``.

    Args:
        strata: per unit, its stratum (the photograph or sub-folder it comes from), ids from 0.
        sizes: per unit, how many images it holds.
        totals: ``(U, J)``, per unit, the sums over its images of J statistics (:func:`image_statistics`);
            the first orders the units of a stratum by difficulty.
        fractions: the parts' shares of the units, each > 0, summing to 1.
        rng: the split's generator.
        draws: how many candidate splits to draw (default :data:`DRAWS`, within :data:`DRAW_BUDGET`).

    Each candidate is a stratified draw. Strata are laid end to end in random order; within a stratum, its
    small units (less than half its largest: a photograph's edge regions) come after the others, and each
    of the two runs is sorted by difficulty and shuffled within blocks of ``ceil(1 / min(fractions))``
    units (7 for 15 %). The parts' labels are then spread evenly along that order, with a random phase per
    part: part ``k`` gets ``max(1, round(f_k U))`` units (the first part the rest), and every stretch of
    the order gets each part in proportion, give or take a unit or two. So every stratum with enough units
    is in every part, and each block of similar difficulty gives about one unit to the smallest part.

    Of the candidates, the one whose parts are most alike is kept (re-randomisation): the smallest sum of
    squared relative differences between each part's and all units' mean of each statistic, between each
    part's share of the images and its fraction, and (weighted by the stratum's share of the images) between
    each stratum's share of images in each part and that part's fraction.

    Raises:
        DataError: there are too few units to give every part at least one.
    """
    units, parts = len(strata), len(fractions)
    draws = draws or max(1, min(DRAWS, DRAW_BUDGET // max(units, 1)))
    quotas = [max(1, round(f * units)) for f in fractions[1:]]
    quotas.insert(0, units - sum(quotas))
    if quotas[0] < 1:
        raise DataError(
            f"only {units} independent units (images or regions), too few to split into {parts} non-empty "
            "parts; use a source with more images"
        )
    largest = np.zeros(int(strata.max()) + 1)
    np.maximum.at(largest, strata, sizes)
    small = (sizes < largest[strata] / 2).astype(np.int64)
    block = _rank_within(strata * 2 + small, totals[:, 0] / sizes) // math.ceil(1 / min(fractions))
    # Every candidate at once, one row each: the order of the units, then the labels along that order.
    stratum_rank = rng.random((draws, len(largest)))[:, strata]
    within = np.broadcast_to(small * units + block, (draws, units))
    order = np.lexsort((rng.random((draws, units)), within, stratum_rank))
    times = np.concatenate([(np.arange(q) + rng.random((draws, 1))) / q for q in quotas], axis=1)
    labels = np.repeat(np.arange(parts), quotas)[np.argsort(times, axis=1, kind="stable")]
    candidates = np.empty((draws, units), dtype=np.int64)
    np.put_along_axis(candidates, order, labels, axis=1)
    return candidates[int(np.argmin(_imbalance(candidates, strata, sizes, totals, fractions)))]


def _rank_within(strata: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each unit's rank (0-based) by ``values`` among the units of its stratum (ties by position)."""
    order = np.lexsort((values, strata))
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order)) - np.searchsorted(strata[order], strata[order], side="left")
    return ranks


def _imbalance(
    candidates: np.ndarray, strata: np.ndarray, sizes: np.ndarray, totals: np.ndarray, fractions: Sequence[float]
) -> np.ndarray:
    """Per candidate split ``(draws, U)``: how far its parts are from alike (see :func:`balanced_split`)."""
    draws, parts = len(candidates), len(fractions)
    share = np.asarray(fractions)
    cells = (candidates + parts * np.arange(draws)[:, None]).ravel()
    per_part = np.stack(
        [np.bincount(cells, weights=np.tile(column, draws), minlength=draws * parts) for column in (sizes, *totals.T)],
        axis=-1,
    ).reshape(draws, parts, -1)
    means = per_part[..., 1:] / np.maximum(per_part[..., :1], 1)
    overall = totals.sum(axis=0) / sizes.sum()
    score = np.square((means - overall) / np.maximum(overall, 1e-12)).sum(axis=(1, 2))
    score += np.square(per_part[..., 0] / sizes.sum() / share - 1).sum(axis=1)
    # Each stratum's images in each part, against its fraction of the stratum, weighted by the stratum's share
    # of all images; strata with too few units to reach every part are left to chance.
    count = int(strata.max()) + 1
    big = np.bincount(strata, minlength=count) >= math.ceil(1 / min(fractions))
    if big.any():
        in_stratum = np.bincount(strata, weights=sizes, minlength=count)
        in_cells = ((strata * parts + candidates) + count * parts * np.arange(draws)[:, None]).ravel()
        per_stratum = np.bincount(in_cells, weights=np.tile(sizes, draws), minlength=draws * count * parts)
        shares = per_stratum.reshape(draws, count, parts)[:, big] / in_stratum[big, None]
        weight = in_stratum[big] / sizes.sum()
        score += (np.square(shares / share - 1).sum(axis=2) * weight).sum(axis=1)
    return score


def split_items(
    groups: np.ndarray, strata: np.ndarray, statistics: np.ndarray, fractions: Sequence[float], rng: np.random.Generator
) -> list[np.ndarray]:
    """Split items into ``len(fractions)`` disjoint index arrays with :func:`balanced_split`, every unit whole.

    ``groups`` is each item's unit (``np.arange(n)`` for independent images), ``strata`` its stratum (the
    same for every item of a unit) and ``statistics`` its :func:`image_statistics`. Each part comes back in
    random order, so its first ``k`` items are a seeded random subset.

    Raises:
        DataError: there are too few units to give every part at least one.
    """
    _, unit, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    unit_stratum = np.zeros(len(sizes), dtype=np.int64)
    unit_stratum[unit] = strata
    totals = np.stack([np.bincount(unit, weights=column, minlength=len(sizes)) for column in statistics.T], axis=1)
    part = balanced_split(unit_stratum, sizes.astype(np.float64), totals, fractions, rng)[unit]
    return [rng.permutation(np.flatnonzero(part == k)) for k in range(len(fractions))]


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize square ``uint8`` images ``(N, s, s, 3)`` to ``(N, size, size, 3)``, anti-aliased."""
    if images.shape[1] == size:
        return images
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = np.asarray(Image.fromarray(image).resize((size, size), RESAMPLE))
    return out
