"""Data that is small on disk but huge once read: CIFAR-10 archive and batch bombs, image decompression bombs.

Each bomb is built by construction in ``tmp_path`` (a gzip of zeros is cheap: 3 GB of zeros are 3 MB of
repeated gzip members) and must be refused, or skipped and counted, from its header: in one line, with the
memory of a bare interpreter. Peak memory is measured in a fresh process with generous bounds, since an
unguarded reader needs gigabytes.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cae.data import load_dataset
from cae.datasets import cifar, folder
from cae.errors import DataError
from tests.fresh_process import Outcome, run_fresh

GIB = 2**30
_ZEROS_CHUNK = 16 * 2**20  # each repeated gzip member inflates to this many zeros


def gzip_tar_bomb(path: Path, members: list[tuple[str, int, bytes]]) -> Path:
    """A gzip tar whose members are (name, declared size, type) and whose content is zeros.

    The zeros are one compressed 16 MiB gzip member repeated, so a member declaring gigabytes costs
    megabytes on disk and milliseconds to write; gzip readers treat concatenated members as one stream.
    """
    chunk = gzip.compress(bytes(_ZEROS_CHUNK), compresslevel=9)
    with path.open("wb") as out:
        for name, size, kind in members:
            info = tarfile.TarInfo(name)
            info.size, info.type = size, kind
            out.write(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
            whole, rest = divmod(size, _ZEROS_CHUNK)
            for _ in range(whole):
                out.write(chunk)
            out.write(gzip.compress(bytes(rest + (-size % tarfile.BLOCKSIZE))))
        out.write(gzip.compress(bytes(2 * tarfile.BLOCKSIZE)))  # end of archive
    return path


def load_fresh(spec: str) -> Outcome:
    """Load ``spec`` through the CLI plumbing in a fresh process."""
    return run_fresh(f"from cae.data import load_dataset\nload_dataset({spec!r}, image_size=8)")


# --- CIFAR-10 archives -----------------------------------------------------------------------------------


def test_a_batch_declaring_3_gb_is_refused_from_its_header_with_bounded_memory(tmp_path: Path) -> None:
    archive = gzip_tar_bomb(
        tmp_path / "cifar-10-python.tar.gz", [("cifar-10-batches-py/data_batch_1", 3 * GIB, tarfile.REGTYPE)]
    )
    assert archive.stat().st_size < 8 * 2**20  # small on disk
    outcome = load_fresh(f"cifar10:{archive}")
    assert outcome.returncode == 2, outcome.stderr
    assert outcome.stderr.count("\n") == 1, outcome.stderr
    assert f"a member of {3 * GIB:,} bytes, more than any genuine one" in outcome.stderr
    assert "cifar-10-batches-py/data_batch_1" in outcome.stderr and "download it again" in outcome.stderr
    assert outcome.peak_mib < 400, outcome  # an unguarded read holds the whole 3 GB member


def test_members_larger_in_all_than_a_genuine_archive_are_refused(tmp_path: Path) -> None:
    # Each within a batch's size, seven together more than the whole archive; they are not batches, so an
    # unguarded reader would decompress them all just to skip them.
    size = 31 * 2**20
    archive = gzip_tar_bomb(tmp_path / "big.tar.gz", [(f"junk/{i}", size, tarfile.REGTYPE) for i in range(7)])
    with pytest.raises(DataError, match=f"members of {7 * size:,} bytes in all, more than a genuine archive"):
        load_dataset(f"cifar10:{archive}")


def test_a_pax_header_bomb_is_stopped_by_the_decompression_budget(tmp_path: Path) -> None:
    # tarfile reads a pax header's content itself, before yielding the member: only the budget can stop it.
    archive = gzip_tar_bomb(tmp_path / "pax.tar.gz", [("././@PaxHeader", GIB, tarfile.XHDTYPE)])
    with pytest.raises(DataError, match=f"decompresses to more than {cifar.MAX_ARCHIVE_BYTES:,} bytes"):
        load_dataset(f"cifar10:{archive}")


def test_an_archive_of_many_members_is_refused(tmp_path: Path) -> None:
    archive = gzip_tar_bomb(tmp_path / "many.tar.gz", [(f"f{i}", 0, tarfile.REGTYPE) for i in range(100)])
    with pytest.raises(DataError, match=f"more than {cifar.MAX_MEMBERS} members"):
        load_dataset(f"cifar10:{archive}")


def test_the_bounds_leave_room_for_the_genuine_archive() -> None:
    batch, members = 31_035_704, 8  # sizes of data_batch_1 and of the whole official archive
    assert batch < cifar.MAX_BATCH_BYTES
    assert 6 * batch + members * 2 * tarfile.BLOCKSIZE < cifar.MAX_ARCHIVE_BYTES


def test_an_oversized_batch_file_in_the_extracted_folder_is_refused_unread(tiny_cifar) -> None:
    batch = tiny_cifar.folder / "data_batch_3"
    os.truncate(batch, 5 * GIB)  # sparse: 5 GB declared, nothing on disk
    with pytest.raises(DataError, match=f"data_batch_3 has {5 * GIB:,} bytes, more than any genuine"):
        load_dataset(f"cifar10:{tiny_cifar.folder}")


_RECONSTRUCT = np.zeros(1).__reduce__()[0]


class _HugeEmptyArray:
    """Pickles as numpy's own ``_reconstruct(ndarray, (10**12,), 'u1')``: a terabyte from a few bytes."""

    def __reduce__(self) -> tuple[object, ...]:
        return _RECONSTRUCT, (np.ndarray, (10**12,), b"B")


class _DirectNdarray:
    """Pickles as ``numpy.ndarray((10**12,))``, an allocation without ``_reconstruct``."""

    def __reduce__(self) -> tuple[object, ...]:
        return np.ndarray, ((10**12,),)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (_HugeEmptyArray(), f"asks for an array of {10**12:,} bytes in a pickle of"),
        (_DirectNdarray(), "is not a readable CIFAR-10 batch"),
    ],
)
def test_a_batch_cannot_allocate_more_than_its_own_size(tiny_cifar, payload: object, expected: str) -> None:
    (tiny_cifar.folder / "test_batch").write_bytes(pickle.dumps({b"data": payload}, protocol=2))
    with pytest.raises(DataError, match=expected):
        load_dataset(f"cifar10:{tiny_cifar.folder}")


# --- image folders ---------------------------------------------------------------------------------------


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A genuine 1-bit grayscale PNG of zeros: gigapixels in tens of KB, compressed row by row."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (width + 7) // 8)  # filter byte, then the packed bits
    packer, parts = zlib.compressobj(9), []
    for _ in range(height):
        parts.append(packer.compress(row))
    parts.append(packer.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
    )
    return path


def jpeg_claiming(path: Path, width: int, height: int) -> Path:
    """A small real JPEG whose frame header (SOF0) is patched to claim ``width`` x ``height``."""
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, format="JPEG")
    raw = bytearray(path.read_bytes())
    sof = raw.index(b"\xff\xc0")
    raw[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(raw))
    return path


def test_image_bombs_are_skipped_counted_and_cost_no_decoding(image_folder: Path) -> None:
    png_bomb(image_folder / "bomb-400mp.png", 20_000, 20_000)  # over twice Pillow's limit: Pillow refuses
    png_bomb(image_folder / "bomb-81mp.png", 9_000, 9_000)  # under Pillow's limit, over caesweep's
    jpeg_claiming(image_folder / "claims-4gp.jpg", 65_000, 65_000)
    assert sum(f.stat().st_size for f in image_folder.glob("bomb-*")) < 2**20
    for name in ("bomb-400mp.png", "bomb-81mp.png", "claims-4gp.jpg"):
        with pytest.raises(folder.Unusable, match="larger than 64,000,000 pixels"):
            folder.read_image(image_folder / name, 8)
    outcome = load_fresh(f"folder:{image_folder}")
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.peak_mib < 400, outcome  # decoding the 400 MP PNG alone would take 400 MB
    dataset = load_dataset(f"folder:{image_folder}", image_size=8)
    assert "skipped 5 of 11 files (3 larger than 64,000,000 pixels, 2 not JPEG/PNG)" in dataset.source
