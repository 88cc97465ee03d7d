"""Any folder of JPEG/PNG photographs, searched recursively (``folder:PATH``).

Each image is centre-cropped to a square and resized (Pillow, Lanczos) to the image size; grayscale images
are repeated over three channels, transparent ones are laid over white, and EXIF rotations are applied. Files
are taken in sorted order of their path, so the same folder and seed always give the same split. Each file is
an independent unit: the split is drawn at random (seeded) over the usable images, stratified so that every
sub-folder is in every split in proportion and balanced for difficulty (:func:`cae.datasets.balanced_split`).

Reading is defensive: Pillow may only use its JPEG and PNG decoders, and any file that is not a JPEG or PNG,
is corrupt or truncated, or has more than :data:`MAX_PIXELS` pixels (a decompression bomb) is skipped; the
count is reported in the dataset's ``source`` and logged once as a warning. Nothing in a file is ever run.
"""

from __future__ import annotations

import logging
import os
import struct
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cae.datasets import RESAMPLE, Splits, image_statistics, split_items
from cae.errors import DataError

log = logging.getLogger(__name__)

# Larger images are skipped before decoding: 64 megapixels covers any camera photograph, and bounds the
# memory one file can make us allocate (Pillow's own limit, Image.MAX_IMAGE_PIXELS, is global state that
# other code may rely on, so it is left alone).
MAX_PIXELS = 64_000_000

# The decoders Pillow may use; restricting them keeps the attack surface to two well-tested formats.
_FORMATS = ("JPEG", "PNG")

# What Pillow raises on a corrupt or hostile file (it is not consistent about which).
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
)


class Unusable(Exception):
    """Raised by :func:`read_image` for a file that :func:`load` skips; the message is the reason."""


def load(
    path: str, image_size: int, split: tuple[float, float, float], seed: int, limit: int | None
) -> Splits:
    """Read every usable image under ``path`` and split them at random."""
    root = Path(path).expanduser()
    files = list_files(root)
    images, folders, skipped = [], [], Counter[str]()
    for file in files:
        try:
            images.append(read_image(file, image_size))
        except Unusable as reason:
            skipped[str(reason)] += 1
        else:
            folders.append(file.parent.relative_to(root).as_posix() + "/")
    if len(images) < 3:
        raise DataError(
            f"folder {root} has {len(images)} usable JPEG/PNG images of {len(files)} files, and at least 3 "
            "are needed for train, val and test; add images or point folder:PATH elsewhere"
        )
    skip_note = ""
    if skipped:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items()))
        skip_note = f"; skipped {skipped.total()} of {len(files)} files ({reasons})"
        log.warning("folder %s: skipped %d of %d files (%s)", root, skipped.total(), len(files), reasons)
    pool = np.stack(images)
    # Each file is its own unit; its sub-folder is its stratum, so every sub-folder (a class, a shoot) is in
    # every split in proportion.
    names, stratum = np.unique(np.array(folders), return_inverse=True)
    parts = split_items(np.arange(len(pool)), stratum, image_statistics(pool), split, np.random.default_rng(seed))
    train, val, test = (part[:limit] for part in parts)
    limited = f", at most {limit} per split" if limit is not None else ""
    source = (
        f"{len(pool):,} JPEG/PNG images from folder {root}, centre-cropped and resized to "
        f"{image_size}x{image_size}, split by file (seed {seed}{limited}), every sub-folder in every split in "
        f"proportion, balanced for difficulty{skip_note}"
    )

    def counts(part: np.ndarray) -> dict[str, int]:
        return {str(names[k]): int(n) for k, n in enumerate(np.bincount(stratum[part], minlength=len(names))) if n}

    return Splits(
        train=pool[train], val=pool[val], test=pool[test], source=source, groups=(train, val, test),
        origins=(counts(train), counts(val), counts(test)),
    )


def list_files(root: Path) -> list[Path]:
    """Every regular file under ``root``, in sorted order of the path relative to ``root``."""
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise DataError(f"image folder {root} {what}; pass folder:PATH with a folder of JPEG/PNG images")
    try:
        os.listdir(root)  # rglob silently yields nothing for an unreadable folder; listing says why
    except OSError as exc:
        raise DataError(f"cannot read image folder {root} ({exc}); check its permissions") from exc
    files = sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
    if not files:
        raise DataError(
            f"image folder {root} is empty; put JPEG/PNG images in it or pass another folder:PATH"
        )
    return files


def read_image(file: Path, size: int) -> np.ndarray:
    """One image as ``uint8`` ``(size, size, 3)``: centre square, resized, RGB.

    Raises:
        Unusable: the file is not a JPEG/PNG, is corrupt, or is too large.
    """
    rgb, _ = open_image(file, draft=size)
    side = min(rgb.size)
    left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
    square = rgb.resize((size, size), RESAMPLE, box=(left, top, left + side, top + side))
    return np.asarray(square, dtype=np.uint8)


def open_image(file: Path, draft: int | None = None) -> tuple[Image.Image, str]:
    """One JPEG/PNG as an 8-bit RGB Pillow image, upright (EXIF rotation applied), and its format ("JPEG" or
    "PNG"); the defences of this module apply (two decoders, :data:`MAX_PIXELS`). ``draft``: a JPEG may be
    decoded at the smallest 1/2, 1/4 or 1/8 scale that still covers ``draft`` x ``draft`` pixels; None: full size.

    Raises:
        Unusable: the file is not a JPEG/PNG, is corrupt, or is too large.
    """
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; treat that as a bomb too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file, formats=_FORMATS) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise Unusable(f"larger than {MAX_PIXELS:,} pixels")
                kind = str(image.format)
                if draft is not None:
                    image.draft("RGB", (draft, draft))
                rgb = _to_rgb(ImageOps.exif_transpose(image))
    except UnidentifiedImageError as exc:
        raise Unusable("not JPEG/PNG") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own check, at open, of images over twice (error) or once (warning) its limit: too large too.
        raise Unusable(f"larger than {MAX_PIXELS:,} pixels") from exc
    except PermissionError as exc:
        raise Unusable("unreadable") from exc
    except _DECODE_ERRORS as exc:
        raise Unusable("corrupt") from exc
    return rgb, kind


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any JPEG/PNG mode to 8-bit RGB."""
    if image.mode.startswith("I"):
        # 16-bit grayscale PNG: Pillow's convert("L") would clip at 255 instead of scaling.
        levels = np.asarray(image, dtype=np.float32) * (255 / 65535)
        image = Image.fromarray(np.clip(np.rint(levels), 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return image.convert("RGB")
