"""Datasets: where the images come from and how they are split.

:func:`load_dataset` is the one entry point. A dataset is named by a *spec*:

- ``embedded`` (the default): tiles of photographs bundled with scikit-image and scikit-learn; no download
  (:mod:`cae.datasets.embedded`).
- ``cifar10`` or ``cifar10:PATH``: the official CIFAR-10 python archive or folder, from PATH or Keras's cache,
  downloaded there (checksum verified) when missing (:mod:`cae.datasets.cifar`).
- ``stl10`` or ``stl10:PATH``: the official STL-10 binary archive or folder (96x96; 105,000 training and
  unlabelled images, 8,000 test), likewise (:mod:`cae.datasets.stl10`).
- ``folder:PATH``: any folder of JPEG/PNG images (:mod:`cae.datasets.folder`).

Every dataset comes back as a :class:`Dataset` of three disjoint ``float32`` arrays ``(N, S, S, 3)`` with
values in ``[-1, 1]``. Splits are drawn with ``numpy.random.default_rng(seed)``, so the same arguments give
the same split on any machine (with the same library versions). This module imports neither TensorFlow nor
Keras.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cae.cli import ArgumentParser, run
from cae.config import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from cae.datasets import cifar, embedded, folder, stl10
from cae.errors import DataError, UsageError

if TYPE_CHECKING:
    from cae.tasks import Task

DATASETS = ("embedded", "cifar10", "stl10", "folder")

# The spec forms, as shown to users when a spec is wrong.
_FORMS = "embedded, cifar10, cifar10:PATH, stl10, stl10:PATH or folder:PATH"

# Image sizes are powers of two so that every encoder depth halves them exactly (the limits live in cae.config).
_MIN_SIZE, _MAX_SIZE = MIN_IMAGE_SIZE, MAX_IMAGE_SIZE


SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Dataset:
    """Three disjoint image splits, ``float32`` ``(N, S, S, 3)`` in ``[-1, 1]``, and where they came from."""

    name: str  # the spec it was loaded from, e.g. "embedded", "cifar10:/data/cifar-10-python.tar.gz"
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    source: str  # one sentence: where the images came from and how they were split
    # Per split, the independent unit of each image (int64, one per image): the images of a unit were drawn
    # together (the tiles of one region of a photograph) and are resampled together by the test-set
    # bootstrap (:func:`bootstrap`). A split left out has one unit per image.
    groups: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    # Per split, how many images each source gave (photograph, sub-folder, archive); empty when unknown.
    origins: Mapping[str, Mapping[str, int]] = field(default_factory=dict, repr=False, compare=False)
    # A content hash of the three splits and their units, computed once when the dataset is built: it travels
    # with the dataset to Ray workers, so per-trial caches (baselines) recognise the same data without hashing
    # tens of megabytes again in every trial.
    fingerprint: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        shapes = {split: getattr(self, split).shape for split in SPLITS}
        for split, shape in shapes.items():
            array = getattr(self, split)
            if array.dtype != np.float32 or len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3:
                raise DataError(
                    f"dataset {self.name}: {split} must be float32 of shape (N, S, S, 3), got {array.dtype} "
                    f"{shape}"
                )
        if len({shape[1:] for shape in shapes.values()}) != 1:
            raise DataError(f"dataset {self.name}: splits differ in image shape ({shapes})")
        object.__setattr__(self, "groups", {split: self._units(split) for split in SPLITS})
        digest = hashlib.blake2b(digest_size=16)
        for split in SPLITS:
            array = np.ascontiguousarray(getattr(self, split))
            digest.update(f"{split}{array.dtype}{array.shape}".encode())
            digest.update(array.data)
            digest.update(self.groups[split].data)
        object.__setattr__(self, "fingerprint", digest.hexdigest())

    def _units(self, split: str) -> np.ndarray:
        """The split's unit ids as given (checked: one integer per image), or one unit per image; read-only."""
        n = len(getattr(self, split))
        given = self.groups.get(split)
        units = np.arange(n, dtype=np.int64) if given is None else np.array(given)
        if units.shape != (n,) or units.dtype.kind not in "iu":
            raise DataError(
                f"dataset {self.name}: the units of {split} must be one integer per image ({n}), got "
                f"{units.dtype} {units.shape}"
            )
        units = units.astype(np.int64)
        units.flags.writeable = False
        return units

    @property
    def image_size(self) -> int:
        """The side ``S`` of the square images."""
        return int(self.train.shape[1])

    def summary(self) -> str:
        """One line, e.g. ``embedded: 5,857 train / 1,229 val / 1,156 test, 32x32 RGB``."""
        size = self.image_size
        return (
            f"{self.name}: {len(self.train):,} train / {len(self.val):,} val / {len(self.test):,} test, "
            f"{size}x{size} RGB"
        )

    def noise_seed(self, split: str) -> int:
        """The seed of the noise that denoising adds to ``split``'s images: a function of the split's content
        (its fingerprint) alone, so every training seed of one split is scored on the same noisy val and test
        inputs, whatever the noise level (which scales the same draws)."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        digest = hashlib.blake2b(f"{self.fingerprint}/{split}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little")


def load_dataset(
    spec: str = "embedded",
    image_size: int = 32,
    seed: int = 0,
    split: tuple[float, float, float] = (0.7, 0.15, 0.15),
    limit: int | None = None,
) -> Dataset:
    """Load the dataset named by ``spec`` and split it into train, val and test.

    Args:
        spec: ``embedded``, ``cifar10``, ``cifar10:PATH``, ``stl10``, ``stl10:PATH`` or ``folder:PATH`` (see the
            module docstring); plain ``cifar10`` and ``stl10`` download the official archive when it is missing.
        image_size: side of the square images, a power of two from 8 to 256.
        seed: seeds the split (and the subset kept by ``limit``); the same seed gives the same split.
        split: fractions of train, val and test, each > 0, summing to 1. For CIFAR-10 the official test set is
            the test split and only the train/val ratio is used; the same for STL-10's official test set.
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
    elif name == "stl10":
        raw = stl10.load(path, image_size, split, seed, limit)
    else:
        raw = folder.load(_required(path), image_size, split, seed, limit)
    return Dataset(
        name=spec.strip(),
        train=_to_unit_range(raw.train),
        val=_to_unit_range(raw.val),
        test=_to_unit_range(raw.test),
        source=raw.source,
        groups=dict(zip(SPLITS, raw.groups, strict=True)),
        origins=dict(zip(SPLITS, raw.origins, strict=True)),
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


# --- the test-set interval: a bootstrap over a split's independent units -------------------------------------

# A percentile bootstrap from 1,000 resamples: its 2.5th and 97.5th percentiles move by ~3 % of the interval's
# width from one set of resamples to another. The resamples are drawn from a fixed seed, so every model
# scored on one split is resampled alike (the same interval for the same errors, and paired differences).
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Bootstrap:
    """Resamples of one split's independent units (:attr:`Dataset.groups`), drawn once and reused.

    ``counts[b, u]`` is how often unit ``u`` is drawn (with replacement, as many draws as there are units)
    in resample ``b``. A statistic is resampled through its per-unit sums, never by copying images: one
    ``(B, U) x (U,)`` product.
    """

    units: np.ndarray  # per image, the index (0..U-1) of its unit
    counts: np.ndarray  # (B, U) float32
    images: np.ndarray  # (B,) how many images each resample holds

    def means(self, per_image: np.ndarray) -> np.ndarray:
        """The mean of ``per_image`` (one value per image of the split) over each resample's images: ``(B,)``."""
        totals = np.bincount(self.units, weights=per_image, minlength=self.counts.shape[1])
        return (self.counts @ totals.astype(np.float32)).astype(np.float64) / self.images


def bootstrap(groups: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Bootstrap:
    """The :class:`Bootstrap` of a split whose images belong to the units ``groups`` (one id per image).

    Drawing costs ~0.15 s for 10,000 units (CIFAR-10's test set) and nothing noticeable for the embedded
    test split's ~26 regions; callers keep it for every model they score on the split.
    """
    _, units = np.unique(groups, return_inverse=True)
    count = int(units.max()) + 1 if len(units) else 0
    draws = np.random.default_rng(seed).integers(0, max(count, 1), (resamples, count), dtype=np.int32)
    flat = (draws + count * np.arange(resamples, dtype=np.int64)[:, None]).ravel()
    counts = np.bincount(flat, minlength=resamples * count).reshape(resamples, count).astype(np.float32)
    sizes = np.bincount(units, minlength=count).astype(np.float32)
    return Bootstrap(units=units, counts=counts, images=(counts @ sizes).astype(np.float64))


def half_width(replicates: np.ndarray) -> float:
    """Half the width of the central 95 % of ``replicates`` (percentile interval): the ``_ci95`` of a score.
    NaN when the replicates are not all finite (no interval: e.g. a skill without a baseline)."""
    if not len(replicates) or not np.isfinite(replicates).all():
        return math.nan
    low, high = np.percentile(replicates, [2.5, 97.5])
    return float(high - low) / 2


# --- python -m cae.data describe: what a split holds ------------------------------------------------------

_BATCH = 2048  # images encoded at a time when describing a split: bounds memory on CIFAR-10's 41,176 train


def describe(data: Dataset, task_name: str, noise: float = 0.1) -> dict[str, Any]:
    """What each split holds, as plain data: images, units, sources, and the task's trivial baseline.

    Per split: ``n`` (images), ``units`` (independent units: regions or images), ``sources`` (images per
    photograph, sub-folder or archive part), ``trivial_mse`` (the task's trivial baseline on the split, in
    the task's reference space, exactly as training scores it) and ``trivial_mse_ci95`` (half-width of its
    95 % bootstrap interval over the split's units). ``val_test_ratio`` is the val/test ratio of
    ``trivial_mse``: near 1 when val and test are alike. Denoising's noise is that of the split
    (:meth:`Dataset.noise_seed`), at level ``noise``.

    Raises:
        TaskError: an unknown task.
    """
    from cae.tasks import TRIVIAL_NAMES, get_task  # imports scikit-image's colour module: only when describing

    task = get_task(task_name)
    splits: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        images, groups = getattr(data, split), data.groups[split]
        if task.kind == "denoise":  # the noise is drawn for the whole split at once, as training draws it
            errors = _trivial_errors(task, images, noise, data.noise_seed(split))
        else:
            errors = np.concatenate(
                [_trivial_errors(task, images[i : i + _BATCH], 0.0, 0) for i in range(0, len(images), _BATCH)]
            )
        splits[split] = {
            "n": len(images),
            "units": len(np.unique(groups)),
            "sources": dict(data.origins.get(split, {})),
            "trivial_mse": float(errors.mean()),
            "trivial_mse_ci95": half_width(bootstrap(groups).means(errors)),
        }
    val, test = splits["val"]["trivial_mse"], splits["test"]["trivial_mse"]
    return {
        "data": data.name,
        "image_size": data.image_size,
        "task": task.name,
        **({"noise": noise} if task.kind == "denoise" else {}),
        "trivial": TRIVIAL_NAMES[task.kind],
        "source": data.source,
        "splits": splits,
        "val_test_ratio": val / test if test > 0 else None,
    }


def _trivial_errors(task: Task, images: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """Per image, the MSE of ``task``'s trivial baseline against the truth, in the reference space."""
    pair = task.make_pair(images, noise=noise, seed=seed)
    diff = task.trivial(pair.x, pair.y).astype(np.float64) - task.reference(images)
    return np.square(diff).mean(axis=(1, 2, 3))


def format_description(description: Mapping[str, Any], top: int = 4) -> str:
    """:func:`describe`'s result as a few aligned lines; each split's ``top`` largest sources are named."""
    d = description
    noise = f" (noise {d['noise']})" if "noise" in d else ""
    seed = f", split seed {d['split_seed']}" if "split_seed" in d else ""
    lines = [
        f"data     {d['data']} at {d['image_size']}x{d['image_size']}{seed}",
        f"source   {d['source']}",
        f"task     {d['task']}{noise}; trivial baseline: {d['trivial']}",
        f"{'split':<6} {'images':>7} {'units':>6}  {'trivial MSE, 95 % CI over units':<31}  sources",
    ]
    for split, s in d["splits"].items():
        ranked = sorted(s["sources"].items(), key=lambda item: (-item[1], item[0]))
        named = ", ".join(f"{name} {n:,}" for name, n in ranked[:top])
        more = f", and {len(ranked) - top} more" if len(ranked) > top else ""
        sources = f"{len(ranked)}: {named}{more}" if ranked else "unknown"
        mse = f"{s['trivial_mse']:.5f} +/- {s['trivial_mse_ci95']:.5f}"
        lines.append(f"{split:<6} {s['n']:>7,} {s['units']:>6,}  {mse:<31}  {sources}")
    ratio = d["val_test_ratio"]
    lines.append(f"val/test ratio of the trivial MSE: {ratio:.2f}" if ratio is not None else "val/test ratio: none")
    return "\n".join(lines)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m cae.data", description="Look at a dataset and its split.")
    commands = parser.add_subparsers(dest="command", required=True)
    describe_parser = commands.add_parser(
        "describe",
        help="what each split holds",
        description="Per split: images, independent units, their sources and the task's trivial baseline MSE "
        "with its 95 % interval over the units; check a split before you trust a sweep on it.",
    )
    describe_parser.add_argument(
        "--data", default="embedded", help="embedded | cifar10[:PATH] | stl10[:PATH] | folder:PATH"
    )
    describe_parser.add_argument("--task", default="reconstruct", help="the task whose trivial baseline is shown")
    describe_parser.add_argument("--image-size", type=int, default=32)
    describe_parser.add_argument("--split-seed", type=int, default=0, help="the seed of the split (default 0)")
    describe_parser.add_argument("--noise", type=float, default=0.1, help="noise std for the denoise task")
    describe_parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def prepare(argv: Sequence[str] | None = None) -> Callable[[], int]:
    """Parse and check the whole command line without reading an image; return the run itself.

    Split from :func:`main`, as in :mod:`cae.train`, so that what a user can get wrong in the arguments is
    checked (and can be fuzzed) cheaply; a path that cannot be read is found when the run reads it.
    """
    from cae.tasks import get_task

    args = build_parser().parse_args(argv)
    get_task(args.task)
    if args.split_seed < 0:
        raise UsageError(f"--split-seed must be a non-negative integer, got {args.split_seed}")
    if not (math.isfinite(args.noise) and args.noise >= 0):
        raise UsageError(f"--noise must be a finite number >= 0, got {args.noise}")
    parse_spec(args.data)
    _check_image_size(args.image_size)
    return lambda: _describe(args)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cae.data describe ...``."""
    return prepare(argv)()


def _describe(args: Any) -> int:
    data = load_dataset(args.data, image_size=args.image_size, seed=args.split_seed)
    description = {**describe(data, args.task, args.noise), "split_seed": args.split_seed}
    print(json.dumps(description, indent=2, allow_nan=False) if args.json else format_description(description))
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
