"""Datasets: where the images come from and how they are split.

:func:`load_dataset` is the one entry point. A dataset is named by a *spec*:

- ``embedded`` (the default): tiles of photographs bundled with scikit-image and scikit-learn; no download
  (:mod:`cae.datasets.embedded`).
- ``cifar10`` or ``cifar10:PATH``: the official CIFAR-10 python archive or folder, from Keras's cache or PATH
  (:mod:`cae.datasets.cifar`).
- ``folder:PATH``: any folder of JPEG/PNG images (:mod:`cae.datasets.folder`).

Every dataset comes back as a :class:`Dataset` of three disjoint ``float32`` arrays ``(N, S, S, 3)`` with
values in ``[-1, 1]``. Splits are drawn with ``numpy.random.default_rng(seed)``, so the same arguments give
the same split on any machine (with the same library versions). This module imports neither TensorFlow nor
Keras.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from cae.config import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from cae.datasets import cifar, embedded, folder
from cae.errors import DataError

DATASETS = ("embedded", "cifar10", "folder")

# The spec forms, as shown to users when a spec is wrong.
_FORMS = "embedded, cifar10, cifar10:PATH or folder:PATH"

# Image sizes are powers of two so that every encoder depth halves them exactly (the limits live in cae.config).
_MIN_SIZE, _MAX_SIZE = MIN_IMAGE_SIZE, MAX_IMAGE_SIZE


@dataclass(frozen=True)
class Dataset:
    """Three disjoint image splits, ``float32`` ``(N, S, S, 3)`` in ``[-1, 1]``, and where they came from."""

    name: str  # the spec it was loaded from, e.g. "embedded", "cifar10:/data/cifar-10-python.tar.gz"
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    source: str  # one sentence: where the images came from and how they were split
    # A content hash of the three splits, computed once when the dataset is built: it travels with the
    # dataset to Ray workers, so per-trial caches (baselines) recognise the same data without hashing
    # tens of megabytes again in every trial.
    fingerprint: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        shapes = {split: getattr(self, split).shape for split in ("train", "val", "test")}
        for split, shape in shapes.items():
            array = getattr(self, split)
            if array.dtype != np.float32 or len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3:
                raise DataError(
                    f"dataset {self.name}: {split} must be float32 of shape (N, S, S, 3), got {array.dtype} "
                    f"{shape}"
                )
        if len({shape[1:] for shape in shapes.values()}) != 1:
            raise DataError(f"dataset {self.name}: splits differ in image shape ({shapes})")
        digest = hashlib.blake2b(digest_size=16)
        for split in ("train", "val", "test"):
            array = np.ascontiguousarray(getattr(self, split))
            digest.update(f"{split}{array.dtype}{array.shape}".encode())
            digest.update(array.data)
        object.__setattr__(self, "fingerprint", digest.hexdigest())

    @property
    def image_size(self) -> int:
        """The side ``S`` of the square images."""
        return int(self.train.shape[1])

    def summary(self) -> str:
        """One line, e.g. ``embedded: 5,755 train / 1,261 val / 1,226 test, 32x32 RGB``."""
        size = self.image_size
        return (
            f"{self.name}: {len(self.train):,} train / {len(self.val):,} val / {len(self.test):,} test, "
            f"{size}x{size} RGB"
        )


def load_dataset(
    spec: str = "embedded",
    image_size: int = 32,
    seed: int = 0,
    split: tuple[float, float, float] = (0.7, 0.15, 0.15),
    limit: int | None = None,
) -> Dataset:
    """Load the dataset named by ``spec`` and split it into train, val and test.

    Args:
        spec: ``embedded``, ``cifar10``, ``cifar10:PATH`` or ``folder:PATH`` (see the module docstring).
        image_size: side of the square images, a power of two from 8 to 256.
        seed: seeds the split (and the subset kept by ``limit``); the same seed gives the same split.
        split: fractions of train, val and test, each > 0, summing to 1. For CIFAR-10 the official test set is
            the test split and only the train/val ratio is used.
        limit: keep at most this many images per split (a seeded random subset), for tests and quick runs.

    Raises:
        DataError: a bad argument, or data that cannot be found, read or trusted.
    """
    name, path = parse_spec(spec)
    _check_image_size(image_size)
    _check_seed(seed)
    split = _check_split(split)
    _check_limit(limit)
    if name == "embedded":
        raw = embedded.load(image_size, split, seed, limit)
    elif name == "cifar10":
        raw = cifar.load(path, image_size, split, seed, limit)
    else:
        raw = folder.load(_required(path), image_size, split, seed, limit)
    return Dataset(
        name=spec.strip(),
        train=_to_unit_range(raw.train),
        val=_to_unit_range(raw.val),
        test=_to_unit_range(raw.test),
        source=raw.source,
    )


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split a dataset spec into its name and path: ``"cifar10:PATH"`` -> ``("cifar10", "PATH")``.

    Raises:
        DataError: an unknown name, a path where none is taken (``embedded``), or none where one is needed.
    """
    if not isinstance(spec, str):
        raise DataError(f"a dataset spec is a string, got {spec!r}; use one of {_FORMS}")
    name, colon, path = spec.strip().partition(":")
    if name not in DATASETS:
        raise DataError(f"unknown dataset {spec!r}; use one of {_FORMS}")
    if name == "embedded" and colon:
        raise DataError(f"dataset {spec!r}: embedded takes no path; use one of {_FORMS}")
    if (colon or name == "folder") and not path:
        raise DataError(f"dataset {spec!r} needs a path after the colon; use one of {_FORMS}")
    return name, path or None


def _required(path: str | None) -> str:
    # parse_spec already guarantees a path for folder; this keeps that guarantee visible to the type checker.
    if path is None:
        raise DataError(f"dataset folder needs a path; use one of {_FORMS}")
    return path


def _check_image_size(image_size: int) -> None:
    if (
        not _is_int(image_size)
        or not _MIN_SIZE <= image_size <= _MAX_SIZE
        or image_size & (image_size - 1)  # a power of two has a single bit set
    ):
        raise DataError(
            f"image_size must be a power of two from {_MIN_SIZE} to {_MAX_SIZE} (8, 16, 32, 64, 128, 256), "
            f"got {image_size!r}"
        )


def _check_seed(seed: int) -> None:
    if not _is_int(seed) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")


def _check_split(split: tuple[float, float, float]) -> tuple[float, float, float]:
    """The split as three floats, each in (0, 1), summing to 1 within 1e-6."""
    try:
        fractions = tuple(float(f) for f in split)
    except (TypeError, ValueError):
        fractions = ()
    if (
        len(fractions) != 3
        or not all(math.isfinite(f) and f > 0 for f in fractions)
        or abs(sum(fractions) - 1) > 1e-6
    ):
        raise DataError(
            "split must be three fractions (train, val, test), each > 0, summing to 1, "
            f"e.g. (0.7, 0.15, 0.15); got {split!r}"
        )
    return fractions[0], fractions[1], fractions[2]


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not _is_int(limit) or limit < 1):
        raise DataError(f"limit must be a positive integer or None, got {limit!r}")


def _is_int(value: object) -> bool:
    # bool is an int subclass, but True as an image size or seed is a mistake, not a choice.
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _to_unit_range(images: np.ndarray) -> np.ndarray:
    """``uint8`` pixels to ``float32`` in ``[-1, 1]`` (``x / 127.5 - 1``), without a float64 temporary."""
    out = images.astype(np.float32)
    out /= 127.5
    out -= 1.0
    return out
