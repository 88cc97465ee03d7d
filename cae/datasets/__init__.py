"""Image sources behind :func:`cae.data.load_dataset`, one module per source.

- :mod:`cae.datasets.embedded`: tiles cut from colour photographs bundled with scikit-image and scikit-learn
  (the default; no download, no disk cache).
- :mod:`cae.datasets.cifar`: the official CIFAR-10 "python version" archive or its extracted folder.
- :mod:`cae.datasets.folder`: any folder of JPEG/PNG images.

Every source returns :class:`Splits`: three disjoint ``uint8`` arrays of shape ``(N, S, S, 3)`` and one
sentence on where the images came from. :mod:`cae.data` validates the arguments and turns the arrays into
floats. This package only needs numpy and Pillow (scikit-image is imported lazily by the embedded source), so
importing the data layer stays fast and never pulls in TensorFlow.
"""

from __future__ import annotations

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
    """Three disjoint image arrays (``uint8``, ``(N, S, S, 3)``) and a sentence on where they came from."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    source: str


def split_indices(
    groups: np.ndarray, fractions: Sequence[float], rng: np.random.Generator
) -> list[np.ndarray]:
    """Split ``len(groups)`` items at random into ``len(fractions)`` disjoint index arrays.

    Items that share a group id are kept together: groups are shuffled, then items within each group, and
    the resulting order is cut at the requested sizes, so at most one group per cut straddles two parts.
    (Pass ``np.arange(n)`` for independent items.) Every part after the first gets
    ``max(1, round(fraction * n))`` items and the first gets the rest, so small sets still give non-empty
    parts. Each part comes back in random order, so its first ``k`` items are a seeded random subset.

    Raises:
        DataError: there are too few items to give every part at least one.
    """
    n = len(groups)
    sizes = [max(1, round(f * n)) for f in fractions[1:]]
    first = n - sum(sizes)
    if first < 1:
        raise DataError(
            f"only {n} images, too few to split into {len(fractions)} non-empty parts; "
            "use a source with more images"
        )
    # Rank every item by (shuffled position of its group, random key within the group).
    _, group_index = np.unique(groups, return_inverse=True)
    group_rank = rng.permutation(group_index.max() + 1)[group_index]
    order = np.lexsort((rng.random(n), group_rank))
    cuts = np.cumsum([first, *sizes])[:-1]
    return [rng.permutation(part) for part in np.split(order, cuts)]


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize square ``uint8`` images ``(N, s, s, 3)`` to ``(N, size, size, 3)``, anti-aliased."""
    if images.shape[1] == size:
        return images
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = np.asarray(Image.fromarray(image).resize((size, size), RESAMPLE))
    return out
