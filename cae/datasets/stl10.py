"""STL-10 from the official binary archive (``stl10_binary.tar.gz``): 96x96 colour photographs.

STL-10 suits autoencoders: besides 5,000 labelled training and 8,000 labelled test images of 10 classes it has
100,000 *unlabelled* images from a broader set of classes, meant for unsupervised learning. Labels are not used.

Where it is looked for: ``stl10:PATH`` may name the ``.tar.gz``, the extracted ``stl10_binary/`` folder, or a
folder containing either; plain ``stl10`` looks in Keras's cache (``$KERAS_HOME/datasets/`` or
``~/.keras/datasets/``) and when it is not there downloads the official archive into it (2.6 GB), checked
against its MD5 as published with the dataset's loaders (:mod:`cae.datasets.download`; ``CAESWEEP_DATA_MIRROR``
names a mirror). A PATH is never downloaded to.

Mapping to our splits: the 8,000 official test images (``test_X.bin``) are our test split; the 5,000 official
training images and the 100,000 unlabelled ones (``train_X.bin``, ``unlabeled_X.bin``) are split at random
(seeded, each of the two files in every split in proportion, balanced for difficulty) into train and val in
the ratio of the train/val fractions. Every image is resized (Pillow, Lanczos) to the image size as it is
read, so memory holds the images at that size only: 113,000 images take 350 MB at 32 px, 1.4 GB at 64 px
(and four times that once in floats). Reading the whole archive takes minutes (2.6 GB of gzip).

Safety: each file is raw ``uint8`` pixels (3x96x96 per image, each channel in column-major order), so nothing
in it can run. The archive is streamed, never extracted, through :mod:`cae.datasets.archives`: an absolute or
``..`` member name, a link or a special file is refused outright; an image file whose size is not a whole
number of images or exceeds the genuine file's, another member over 1 MiB, more than 64 members or more than
:data:`MAX_ARCHIVE_BYTES` decompressed in all is refused from its header, before it is read.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np

from cae.datasets import Splits, image_statistics, resize_images, split_items
from cae.datasets.archives import READ_ERRORS, Budget, decompressed, member_problem, printable
from cae.datasets.download import Archive, cache_folder, fetch
from cae.errors import DataError

URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
# The official archive and its MD5, the checksum torchvision's and TensorFlow's STL-10 loaders check (the
# dataset's page publishes none).
ARCHIVE = Archive(
    title="STL-10 (binary version)",
    filename="stl10_binary.tar.gz",
    url=URL,
    checksum="91f7769df0f17e558f3565bffb0c7dfb",
    size=2_640_397_119,
)
SIDE = 96
IMAGE_BYTES = 3 * SIDE * SIDE  # 27,648 bytes an image
# The image files and how many images the genuine ones hold: no file of an archive may hold more.
GENUINE_IMAGES = {"train_X.bin": 5_000, "test_X.bin": 8_000, "unlabeled_X.bin": 100_000}
_POOL = ("train_X.bin", "unlabeled_X.bin")  # split into train and val
_TEST = "test_X.bin"
# What a split's images are, as cae.data describe lists them.
_ORIGINS = {"train_X.bin": "official training images (train_X)", "unlabeled_X.bin": "unlabelled images (unlabeled_X)"}
# The genuine archive holds 3,124,224,000 bytes of images plus labels, class names and fold indices (~0.1 MB) in
# 7 members; the bounds leave ~2 % (total) and 9x (members) of room, and the small files 10x.
MAX_ARCHIVE_BYTES = 3_200_000_000
MAX_MEMBERS = 64
MAX_OTHER_BYTES = 2**20
_CHUNK = 2048  # images decoded and resized at a time (57 MB of raw pixels)
_HOW_TO_GET = f"download {URL} into ~/.keras/datasets/ or pass stl10:PATH"
# Names the data may have inside a folder, in the order they are tried: extracted, then the archive.
_NAMES = ("stl10_binary", "stl10_binary.tar.gz")


def load(
    path: str | None, image_size: int, split: tuple[float, float, float], seed: int, limit: int | None
) -> Splits:
    """Load STL-10 from ``path`` (or Keras's cache, downloading it there when it is missing) and split it as
    described in the module docstring."""
    location = locate(path) if path is not None or _cached() else fetch(ARCHIVE)
    files = _read_folder(location, image_size) if location.is_dir() else _read_archive(location, image_size)
    pool = np.concatenate([files[name] for name in _POOL])
    strata = np.repeat(np.arange(len(_POOL)), [len(files[name]) for name in _POOL])
    rng = np.random.default_rng(seed)
    train_val = split[0] + split[1]
    train, val = split_items(
        np.arange(len(pool)), strata, image_statistics(pool), (split[0] / train_val, split[1] / train_val), rng
    )
    official_test = files[_TEST]
    test = rng.permutation(len(official_test))
    train, val, test = train[:limit], val[:limit], test[:limit]
    limited = f", at most {limit} per split" if limit is not None else ""
    source = (
        f"STL-10 from {location}: the {len(official_test):,} official test images are the test split and the "
        f"{len(pool):,} official training and unlabelled images are split at random (seed {seed}{limited}, each "
        f"file in every split in proportion, balanced for difficulty) into train and val, resized from 96x96 to "
        f"{image_size}x{image_size}"
    )

    def counts(part: np.ndarray) -> dict[str, int]:
        per_file = np.bincount(strata[part], minlength=len(_POOL))
        return {_ORIGINS[name]: int(n) for name, n in zip(_POOL, per_file, strict=True) if n}

    return Splits(
        train=pool[train], val=pool[val], test=official_test[test], source=source,
        groups=(train, val, len(pool) + test),
        origins=(counts(train), counts(val), {"official test images (test_X)": len(test)}),
    )


def _cached() -> bool:
    try:
        locate(None)
    except DataError:
        return False
    return True


def locate(path: str | None) -> Path:
    """The archive or ``stl10_binary`` folder to read: at ``path``, inside it, or in Keras's cache (never
    downloaded)."""
    if path is None:
        candidates = [cache_folder() / name for name in _NAMES]
    else:
        given = Path(path).expanduser()
        if given.is_file():
            return given
        candidates = [given, *(given / name for name in _NAMES)]
    for candidate in candidates:
        if candidate.is_file() or (candidate / _TEST).is_file():
            return candidate
    looked_at = ", ".join(str(candidate) for candidate in candidates)
    raise DataError(f"STL-10 not found (looked at {looked_at}); {_HOW_TO_GET}")


def _read_folder(folder: Path, image_size: int) -> dict[str, np.ndarray]:
    files = {}
    for name in GENUINE_IMAGES:
        file = folder / name
        try:
            with file.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                _check_image_file(name, size, file)
                files[name] = _images(handle, size, str(file), image_size)
        except OSError as exc:
            raise DataError(f"cannot read STL-10 file {file} ({exc.strerror or exc}); {_HOW_TO_GET}") from None
    return files


def _read_archive(archive: Path, image_size: int) -> dict[str, np.ndarray]:
    """Read the image files from a (gzip) tar stream, checking every member's header before reading it."""
    files: dict[str, np.ndarray] = {}
    declared = 0
    try:
        with (
            archive.open("rb") as compressed,
            decompressed(compressed) as stream,
            tarfile.open(fileobj=Budget(stream, MAX_ARCHIVE_BYTES, lambda: _bomb(archive)), mode="r|") as tar,
        ):
            for count, member in enumerate(tar, 1):
                declared += member.size
                name = PurePosixPath(member.name).name
                problem = member_problem(member) or _size_problem(member, name, count, declared)
                if problem:
                    raise DataError(
                        f"{archive} contains {problem} ({printable(member.name)}), so it is not a genuine STL-10 "
                        f"archive; refusing to read it: download it again from {URL}"
                    )
                if member.isfile() and name in GENUINE_IMAGES:
                    file = tar.extractfile(member)
                    if file is not None:
                        files[name] = _images(file, member.size, f"{archive}:{member.name}", image_size)
    except PermissionError as exc:
        raise DataError(f"cannot read {archive} ({exc}); check its permissions") from exc
    except READ_ERRORS as exc:
        raise DataError(f"{archive} is truncated or not a gzip tar ({exc}); download it again from {URL}") from exc
    missing = [name for name in GENUINE_IMAGES if name not in files]
    if missing:
        raise DataError(
            f"{archive} lacks {', '.join(missing)}, so it is not the STL-10 binary version; download it again "
            f"from {URL}"
        )
    return files


def _size_problem(member: tarfile.TarInfo, name: str, count: int, declared: int) -> str | None:
    """What makes an archive too large, or a member not an STL-10 file, judged from the headers read so far."""
    if count > MAX_MEMBERS:
        return f"more than {MAX_MEMBERS} members (a genuine one has 7)"
    if declared > MAX_ARCHIVE_BYTES:
        return f"members of {declared:,} bytes in all, more than a genuine archive (about 3.1 GB)"
    if member.isfile() and name in GENUINE_IMAGES:
        return _image_file_problem(name, member.size)
    if member.size > MAX_OTHER_BYTES:
        return f"a member of {member.size:,} bytes that is none of its image files"
    return None


def _image_file_problem(name: str, size: int) -> str | None:
    most = GENUINE_IMAGES[name]
    if size == 0 or size % IMAGE_BYTES:
        return f"a {name} of {size:,} bytes, not a whole number of 96x96 images ({IMAGE_BYTES:,} bytes each)"
    if size > most * IMAGE_BYTES:
        return f"a {name} of {size // IMAGE_BYTES:,} images, more than the genuine one's {most:,}"
    return None


def _check_image_file(name: str, size: int, where: Path) -> None:
    problem = _image_file_problem(name, size)
    if problem:
        raise DataError(f"{where} is {problem}; refusing to read it: download the data again from {URL}")


def _images(stream: IO[bytes], size: int, where: str, image_size: int) -> np.ndarray:
    """The images of one file as ``uint8`` ``(N, image_size, image_size, 3)``, read and resized a chunk at a time.

    Each image is 3 planes of 96x96 bytes (red, green, blue), each plane in column-major order."""
    count = size // IMAGE_BYTES
    out = np.empty((count, image_size, image_size, 3), dtype=np.uint8)
    for start in range(0, count, _CHUNK):
        n = min(_CHUNK, count - start)
        raw = stream.read(n * IMAGE_BYTES)
        if len(raw) != n * IMAGE_BYTES:
            raise DataError(f"{where} ends early ({len(raw):,} of {n * IMAGE_BYTES:,} bytes); {_HOW_TO_GET}")
        planes = np.frombuffer(raw, dtype=np.uint8).reshape(n, 3, SIDE, SIDE)
        out[start : start + n] = resize_images(np.ascontiguousarray(planes.transpose(0, 3, 2, 1)), image_size)
    return out


def _bomb(archive: Path) -> DataError:
    return DataError(
        f"{archive} decompresses to more than {MAX_ARCHIVE_BYTES:,} bytes, more than a genuine STL-10 archive "
        f"(about 3.1 GB); refusing to read it: download it again from {URL}"
    )
