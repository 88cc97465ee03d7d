"""CIFAR-10 from the official "python version" (``cifar-10-python.tar.gz``).

Where it is looked for: ``cifar10:PATH`` may name the ``.tar.gz``, the extracted ``cifar-10-batches-py/``
folder, or a folder containing either; plain ``cifar10`` looks in Keras's cache, ``$KERAS_HOME/datasets/``
or ``~/.keras/datasets/``, under every name Keras and a manual download use (see :data:`_NAMES`), and when
it is not there downloads the official archive into it, checked against its published SHA-256
(:mod:`cae.datasets.download`; ``CAESWEEP_DATA_MIRROR`` names a mirror). A PATH is never downloaded to.

Mapping to our splits: the 10,000 official test images (``test_batch``) are our test split; the 50,000
official training images (``data_batch_1`` .. ``data_batch_5``) are split at random (seeded, balanced for
difficulty by :func:`cae.datasets.balanced_split`) into train and val, val taking
``split[1] / (split[0] + split[1])`` of them (so the default 0.7/0.15/0.15 gives 41,176 train and 8,824
val). Labels are not used. Images other than 32x32 are resized with Pillow's Lanczos filter.

Safety: the batches are pickles, and unpickling can run arbitrary code. They are read with
:class:`_BatchUnpickler`, which can only rebuild numpy arrays and refuses anything else. The archive is read
into memory and never extracted; an archive with an absolute or ``..`` member name, a link or a special file
is refused outright, as no genuine CIFAR-10 archive contains one. Reading costs at most what a genuine
archive holds: a member larger than a batch, an archive larger in all, a batch file of the extracted folder
larger than a batch, or an array larger than its pickle is refused from its header or size, before it is
read or decompressed (see :data:`MAX_BATCH_BYTES`, :data:`MAX_ARCHIVE_BYTES`).
"""

from __future__ import annotations

import codecs
import io
import math
import os
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import cast

import numpy as np

from cae.datasets import Splits, image_statistics, resize_images, split_items
from cae.datasets.archives import READ_ERRORS, Budget, decompressed, member_problem, printable
from cae.datasets.download import Archive, cache_folder, fetch
from cae.errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# The official archive: its SHA-256 is the one keras.datasets.cifar10 checks (the page above publishes the MD5,
# c58f30108f718f92721af3b95e74349a, of the same file).
ARCHIVE = Archive(
    title="CIFAR-10 (python version)",
    filename="cifar-10-python.tar.gz",
    url=URL,
    checksum="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    size=170_498_071,
)
_HOW_TO_GET = f"download {URL} into ~/.keras/datasets/ or pass cifar10:PATH"

# Sizes of the genuine archive: each batch is 31,035,704 bytes (10,000 rows of 3,072 bytes plus labels and
# file names) and the whole tar 186 MB in 8 members. The bounds leave 8% (batch), 8% (total) and 8x (members)
# of room, and are what reading an archive can cost at most, whatever its headers claim.
MAX_BATCH_BYTES = 32 * 2**20
MAX_ARCHIVE_BYTES = 192 * 2**20
MAX_MEMBERS = 64

_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCH = "test_batch"
# What a split's images are, as cae.data describe lists them.
_TRAINING = "official training images (data_batch_1-5)"
_TESTING = "official test images (test_batch)"

# Names the data may have inside a folder, in the order they are tried: the extracted folder (older Keras and
# manual extraction), the folder Keras 3 extracts to, the archive as downloaded by hand, the archive as older
# and newer Keras versions store it.
_NAMES = (
    "cifar-10-batches-py",
    "cifar-10-batches-py-target/cifar-10-batches-py",
    "cifar-10-python.tar.gz",
    "cifar-10-batches-py.tar.gz",
    "cifar-10-batches-py-target_archive",
)


def _safe_globals() -> dict[tuple[str, str], object]:
    """The only globals a CIFAR-10 batch may name, mapped to what they are allowed to be.

    They are how numpy pickles an array (in ``numpy.core`` before numpy 2 and ``numpy._core`` since;
    ``_frombuffer`` at pickle protocol 5, ``scalar`` for a numpy number) and ``_codecs.encode``, which
    Python 3 uses to pickle bytes at protocol 2. The numpy callables are taken from numpy's own reductions,
    so they are the ones this numpy would use, whatever its version.
    """
    array = np.zeros(1, dtype=np.uint8)
    safe: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }
    for core in ("numpy.core", "numpy._core"):
        safe[(f"{core}.multiarray", "_reconstruct")] = array.__reduce__()[0]
        safe[(f"{core}.numeric", "_frombuffer")] = array.__reduce_ex__(5)[0]
        safe[(f"{core}.multiarray", "scalar")] = np.uint8(0).__reduce__()[0]
    return safe


_SAFE_GLOBALS = _safe_globals()


def load(
    path: str | None, image_size: int, split: tuple[float, float, float], seed: int, limit: int | None
) -> Splits:
    """Load CIFAR-10 from ``path`` (or Keras's cache, downloading it there when it is missing) and split it as
    described in the module docstring."""
    location = locate(path) if path is not None or _cached() else fetch(ARCHIVE)
    batches = _read_folder(location) if location.is_dir() else _read_archive(location)
    train_pool = np.concatenate([batches[name] for name in _TRAIN_BATCHES])
    official_test = batches[_TEST_BATCH]
    rng = np.random.default_rng(seed)
    train_val = split[0] + split[1]
    # Independent images in one stratum, split balanced for difficulty like every other source.
    train, val = split_items(
        np.arange(len(train_pool)), np.zeros(len(train_pool), dtype=np.int64), image_statistics(train_pool),
        (split[0] / train_val, split[1] / train_val), rng,
    )
    test = rng.permutation(len(official_test))
    train, val, test = train[:limit], val[:limit], test[:limit]
    limited = f", at most {limit} per split" if limit is not None else ""
    source = (
        f"CIFAR-10 from {location}: the {len(official_test):,} official test images are the test split and "
        f"the {len(train_pool):,} official training images are split at random (seed {seed}{limited}, balanced "
        "for difficulty) into train and val"
    )
    # Ids of the units (each image its own): official training images 0..49,999, official test images after.
    return Splits(
        train=resize_images(train_pool[train], image_size),
        val=resize_images(train_pool[val], image_size),
        test=resize_images(official_test[test], image_size),
        source=source,
        groups=(train, val, len(train_pool) + test),
        origins=({_TRAINING: len(train)}, {_TRAINING: len(val)}, {_TESTING: len(test)}),
    )


def _cached() -> bool:
    """Whether Keras's cache holds CIFAR-10 under one of its names."""
    try:
        locate(None)
    except DataError:
        return False
    return True


def locate(path: str | None) -> Path:
    """The archive or batches folder to read: at ``path``, inside it, or in Keras's cache (never downloaded)."""
    if path is None:
        candidates = [cache_folder() / name for name in _NAMES]
    else:
        given = Path(path).expanduser()
        if given.is_file():
            return given
        candidates = [given, *(given / name for name in _NAMES)]
    for candidate in candidates:
        if candidate.is_file() or (candidate / _TEST_BATCH).is_file():
            return candidate
    looked_at = ", ".join(str(candidate) for candidate in candidates)
    raise DataError(f"CIFAR-10 not found (looked at {looked_at}); {_HOW_TO_GET}")


def _read_folder(folder: Path) -> dict[str, np.ndarray]:
    batches = {}
    for name in (*_TRAIN_BATCHES, _TEST_BATCH):
        file = folder / name
        try:
            with file.open("rb") as handle:
                # Size first (a 3 GB "batch" is refused unread), then at most one byte more than allowed, in
                # case the file grows in between.
                _check_batch_size(os.fstat(handle.fileno()).st_size, file)
                raw = handle.read(MAX_BATCH_BYTES + 1)
            _check_batch_size(len(raw), file)
        except OSError as exc:
            raise DataError(f"cannot read CIFAR-10 batch {file} ({exc}); {_HOW_TO_GET}") from exc
        batches[name] = _unpickle(raw, str(file))
    return batches


def _read_archive(archive: Path) -> dict[str, np.ndarray]:
    """Read the batches from a (gzip) tar into memory, checking every member before reading any.

    The tar is read as a stream through :class:`_Budget`, so no more than :data:`MAX_ARCHIVE_BYTES` are
    ever decompressed, and each member's declared size and the running total are checked from its header,
    before its content is read or skipped: a bomb is refused from its header.
    """
    wanted = (*_TRAIN_BATCHES, _TEST_BATCH)
    raw: dict[str, bytes] = {}
    declared = 0
    try:
        with (
            archive.open("rb") as compressed,
            decompressed(compressed) as stream,
            tarfile.open(fileobj=Budget(stream, MAX_ARCHIVE_BYTES, lambda: _bomb(archive)), mode="r|") as tar,
        ):
            for count, member in enumerate(tar, 1):
                declared += member.size
                problem = member_problem(member) or _size_problem(member, count, declared)
                if problem:
                    raise DataError(
                        f"{archive} contains {problem} ({printable(member.name)}), so it is not a genuine "
                        f"CIFAR-10 archive; refusing to read it: download it again from {URL}"
                    )
                name = PurePosixPath(member.name).name
                file = tar.extractfile(member) if member.isfile() and name in wanted else None
                if file is not None:
                    raw[name] = file.read()
    except PermissionError as exc:
        raise DataError(f"cannot read {archive} ({exc}); check its permissions") from exc
    except READ_ERRORS as exc:
        raise DataError(
            f"{archive} is truncated or not a gzip tar ({exc}); download it again from {URL}"
        ) from exc
    missing = [name for name in wanted if name not in raw]
    if missing:
        raise DataError(
            f"{archive} lacks {', '.join(missing)}, so it is not the CIFAR-10 python version; download it "
            f"again from {URL}"
        )
    return {name: _unpickle(raw[name], f"{archive}:{name}") for name in wanted}


def _bomb(archive: Path) -> DataError:
    return DataError(
        f"{archive} decompresses to more than {MAX_ARCHIVE_BYTES:,} bytes, more than a genuine CIFAR-10 archive "
        f"(about 186 MB); refusing to read it: download it again from {URL}"
    )


def _check_batch_size(size: int, where: Path) -> None:
    if size > MAX_BATCH_BYTES:
        raise DataError(
            f"{where} has {size:,} bytes, more than any genuine CIFAR-10 batch (about 31 MB, at most "
            f"{MAX_BATCH_BYTES:,} allowed); refusing to read it: download the data again from {URL}"
        )


def _size_problem(member: tarfile.TarInfo, count: int, declared: int) -> str | None:
    """What makes an archive too large to be CIFAR-10, judged from the headers read so far."""
    if count > MAX_MEMBERS:
        return f"more than {MAX_MEMBERS} members (a genuine one has 8)"
    if member.size > MAX_BATCH_BYTES:
        return f"a member of {member.size:,} bytes, more than any genuine one (about 31 MB)"
    if declared > MAX_ARCHIVE_BYTES:
        return f"members of {declared:,} bytes in all, more than a genuine archive (about 186 MB)"
    return None


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else (see :data:`_SAFE_GLOBALS`)."""

    def __init__(self, raw: bytes, where: str) -> None:
        # encoding="bytes" reads the Python 2 strings of the official pickles as bytes (keys b"data", ...).
        super().__init__(io.BytesIO(raw), encoding="bytes")
        self.where = where
        self.limit = len(raw)  # a genuine array's bytes are in the pickle, so none is larger than it

    def find_class(self, module: str, name: str) -> object:
        safe = _SAFE_GLOBALS.get((module, name))
        if safe is None:
            raise DataError(
                f"caesweep refuses to load {self.where}: it tries to construct {module}.{name}, which no "
                f"CIFAR-10 batch does (a pickle can run code); download the data again from {URL}"
            )
        if safe is np.ndarray:
            return _NDARRAY
        if name == "_reconstruct":
            return self._reconstruct
        return safe

    def _reconstruct(self, subtype: object, shape: tuple[int, ...], dtype: object) -> np.ndarray:
        """numpy's ``_reconstruct``, refusing an empty array larger than the whole pickle (a memory bomb)."""
        if subtype is not _NDARRAY:
            raise pickle.UnpicklingError(f"_reconstruct of {subtype!r}, not numpy.ndarray")
        size = math.prod(shape) * np.dtype(dtype).itemsize  # type: ignore[call-overload]
        if size > self.limit:
            raise DataError(
                f"{self.where} asks for an array of {size:,} bytes in a pickle of {self.limit:,}, which no "
                f"CIFAR-10 batch does; download the data again from {URL}"
            )
        return cast(np.ndarray, _RECONSTRUCT(np.ndarray, shape, dtype))


class _NdarrayName:
    """Stands for ``numpy.ndarray`` in a batch: the argument ``_reconstruct`` takes, but not callable, so a
    pickle cannot call ``numpy.ndarray((10**12,))`` itself to allocate an array of any size."""


_NDARRAY = _NdarrayName()
_RECONSTRUCT = cast(Callable[..., object], np.zeros(1, dtype=np.uint8).__reduce__()[0])


def _unpickle(raw: bytes, where: str) -> np.ndarray:
    """The images of one batch as ``uint8`` ``(N, 32, 32, 3)``."""
    try:
        batch = _BatchUnpickler(raw, where).load()
    except (
        pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
        OverflowError,
    ) as exc:
        raise DataError(
            f"{where} is not a readable CIFAR-10 batch ({exc}); download it again from {URL}"
        ) from exc
    data = batch.get(b"data") if isinstance(batch, dict) else None
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == 3072
        and len(data) > 0
    ):
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(
            f"{where} is not a CIFAR-10 batch: expected a dict whose b'data' is a uint8 array of shape "
            f"(N, 3072) with N > 0, found {found}; download it again from {URL}"
        )
    # Rows are 1024 red, then 1024 green, then 1024 blue values, each plane in row-major order.
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
