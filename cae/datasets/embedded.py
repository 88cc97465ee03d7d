"""The default dataset: CIFAR-like tiles cut from colour photographs that ship inside installed packages.

Nothing is downloaded and nothing is written to disk. The photographs are the colour ones that scikit-image
bundles in its wheel (astronaut, chelsea the cat, coffee, rocket, immunohistochemistry, the Hubble deep field,
a retina, and the left view of the stereo motorcycle; the right view is left out because it is a near
duplicate) and scikit-learn's two sample images (china, flower).

How tiles are made, for an image size ``S``:

1. Each photograph is first shrunk so that its short side is at most 512 pixels, so that the large retina and
   Hubble photographs do not dominate.
2. It is then reduced by a few integer factors (1, 2 and 4 for ``S = 32``), so that a tile shows anything from
   a texture to a whole object, as CIFAR images do. The factors scale with ``S`` (2, 4, 8 at ``S = 16``; 1, 2
   at ``S = 64``; never an enlargement), so below 32 pixels a smaller ``S`` changes the resolution of the
   same tiles, not their content.
3. ``S x S`` tiles are cut every ``S / 2`` pixels (tiles overlap by half), and near-flat tiles (pixel
   standard deviation below :data:`MIN_TILE_STD`: black sky, borders, blown-out highlights) are dropped.

At 32x32 this gives 11,703 tiles (2,624 at 64x64) in about 0.3 s; the tiles are cached in memory per image
size, never on disk.

Leakage: all tiles come from ten photographs, so train, val and test share photographs, and overlapping
tiles could share pixels. To limit the latter, the split keeps together all tiles whose centres fall in the
same square region of a photograph (at every scale), so overlapping tiles land in the same split except at
region borders and at the two cut points. Treat validation scores on this dataset as optimistic; use
``cifar10`` or a folder of your own photographs for a held-out estimate.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from cae.datasets import RESAMPLE, Splits, split_indices
from cae.errors import DataError

# Tiles whose pixel values (0-255, all channels) vary less than this are dropped as near-flat; 8 removes the
# black sky around the Hubble galaxies and the black rim of the retina while keeping faint textures.
MIN_TILE_STD = 8.0

# Short side, in pixels, that every photograph is shrunk to (at most) before tiling.
MAX_SHORT_SIDE = 512

# Reduction factors at the reference size of 32 pixels: a tile shows 1/16, 1/8 or 1/4 of a 512-pixel side.
_FACTORS_AT_32 = (1, 2, 4)

# scikit-image's colour photographs, as files in skimage.data.data_dir (what skimage.data.astronaut() etc.
# read). Opening them with Pillow skips importing skimage.io, which costs half a second.
_SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "ihc.png",  # skimage.data.immunohistochemistry()
    "hubble_deep_field.jpg",
    "retina.jpg",
    "motorcycle_left.png",  # skimage.data.stereo_motorcycle()[0]
)

# scikit-learn's sample photographs (load_sample_images()), read from its package folder for the same reason:
# importing sklearn.datasets costs about two seconds.
_SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
_PHOTO_COUNT = len(_SKIMAGE_PHOTOS) + len(_SKLEARN_PHOTOS)


def load(image_size: int, split: tuple[float, float, float], seed: int, limit: int | None) -> Splits:
    """Split the embedded tiles at random (grouped by region, see the module docstring)."""
    tiles, regions = tiles_and_regions(image_size)
    parts = split_indices(regions, split, np.random.default_rng(seed))
    train, val, test = (tiles[part[:limit]] for part in parts)
    limited = f", at most {limit} per split" if limit is not None else ""
    source = (
        f"{len(tiles):,} {image_size}x{image_size} tiles cut from {_PHOTO_COUNT} colour photographs bundled "
        f"with scikit-image and scikit-learn, split at random (seed {seed}{limited}) in blocks of "
        "neighbouring tiles; train, val and test share photographs, so val scores are optimistic"
    )
    return Splits(train=train, val=val, test=test, source=source)


@functools.lru_cache(maxsize=4)
def tiles_and_regions(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """All non-flat tiles ``(N, S, S, 3)`` (``uint8``, read-only) and the region id of each tile.

    Cached per image size for the life of the process, so that repeated trials reuse the same arrays.
    """
    factors = sorted({max(1, f * 32 // image_size) for f in _FACTORS_AT_32})
    # A region is as wide as a tile at the coarsest scale, so each coarse tile's centre lies in one region.
    region_side = image_size * factors[-1]
    all_tiles, all_regions = [], []
    next_region = 0
    for photo in _photos():
        cols = -(-photo.width // region_side)
        for factor in factors:
            tiles, centres = cut_tiles(np.asarray(photo.reduce(factor)), image_size)
            row, col = (centres * factor // region_side).T
            keep = tiles.std(axis=(1, 2, 3), dtype=np.float32) >= MIN_TILE_STD
            all_tiles.append(tiles[keep])
            all_regions.append((next_region + row * cols + col)[keep])
        next_region += -(-photo.height // region_side) * cols
    tiles, regions = np.concatenate(all_tiles), np.concatenate(all_regions)
    tiles.flags.writeable = False  # shared by every caller through the cache
    regions.flags.writeable = False
    return tiles, regions


def cut_tiles(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``size x size`` tiles every ``size // 2`` pixels from an ``(H, W, 3)`` image.

    Returns the tiles ``(N, size, size, 3)`` and their centres ``(N, 2)`` as (row, column) in the image.
    """
    stride = size // 2
    windows = sliding_window_view(image, (size, size, 3))[::stride, ::stride, 0]
    rows, cols = windows.shape[:2]
    ys, xs = np.meshgrid(np.arange(rows) * stride, np.arange(cols) * stride, indexing="ij")
    centres = np.stack([ys.ravel(), xs.ravel()], axis=1) + size // 2
    return windows.reshape(rows * cols, size, size, 3), centres


def _photos() -> list[Image.Image]:
    """The bundled photographs as RGB images, short side shrunk to at most :data:`MAX_SHORT_SIDE`."""
    photos = []
    for path in _photo_paths():
        with Image.open(path) as photo:
            photos.append(_shrink(photo.convert("RGB")))
    return photos


def _photo_paths() -> list[Path]:
    import skimage.data  # lazily, and cheap: skimage.data imports its submodules on first use

    # find_spec locates scikit-learn's package folder without importing it.
    sklearn = importlib.util.find_spec("sklearn")
    if sklearn is None or sklearn.origin is None:
        raise _not_found("scikit-learn")
    sklearn_images = Path(sklearn.origin).parent / "datasets" / "images"
    paths = [Path(skimage.data.data_dir) / name for name in _SKIMAGE_PHOTOS]
    paths += [sklearn_images / name for name in _SKLEARN_PHOTOS]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise _not_found(", ".join(missing))
    return paths


def _not_found(what: str) -> DataError:
    return DataError(
        f"the embedded dataset needs photographs bundled with scikit-image and scikit-learn, but {what} "
        "cannot be found; reinstall scikit-image>=0.22 and scikit-learn>=1.3, or use another dataset "
        "(cifar10 or folder:PATH)"
    )


def _shrink(photo: Image.Image) -> Image.Image:
    """Shrink a photograph so that its short side is at most :data:`MAX_SHORT_SIDE` pixels."""
    scale = MAX_SHORT_SIDE / min(photo.size)
    if scale >= 1:
        return photo
    return photo.resize((round(photo.width * scale), round(photo.height * scale)), RESAMPLE)
