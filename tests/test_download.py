"""Datasets that download themselves (plain ``cifar10``, ``stl10``), from a real HTTP server on loopback.

The official archives are never fetched: the server serves tiny archives under their official file names, the
tests point ``CAESWEEP_DATA_MIRROR`` at it, and supply the tiny archive's checksum by replacing the dataset's
``ARCHIVE`` record, the one the official checksum lives in, so the download goes through the same code path.
Keras's cache is a fresh ``KERAS_HOME`` under ``tmp_path``.
"""

from __future__ import annotations

import hashlib
import http.server
import importlib
import io
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest

from cae.data import load_dataset
from cae.data import main as data_main
from cae.datasets import cifar, resize_images, stl10
from cae.datasets.download import MIRROR_ENV
from cae.errors import DataError
from tests.conftest import in_process
from tests.test_data_bombs import gzip_tar_bomb


@dataclass
class Server:
    """What the loopback server serves: path -> (how, body); and the paths asked for."""

    url: str
    routes: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)


class _Handler(http.server.BaseHTTPRequestHandler):
    site: Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.site.requests.append(self.path)
        how, body = self.site.routes.get(self.path, ("missing", b""))
        if how == "missing":
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if how == "html" else "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if how == "truncated":  # half the announced bytes, then the connection closes
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        elif how == "slow":  # a chunk every 20 ms, for up to 20 s, until the client hangs up
            try:
                for start in range(0, len(body), 1024):
                    self.wfile.write(body[start : start + 1024])
                    self.wfile.flush()
                    time.sleep(0.02)
            except OSError:
                self.close_connection = True
        else:
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    site = Server(url="")
    handler = type("Handler", (_Handler,), {"site": site})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    site.url = f"http://127.0.0.1:{httpd.server_address[1]}/mirror"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv(MIRROR_ENV, site.url)
    yield site
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty Keras cache (KERAS_HOME); its datasets/ folder."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    return tmp_path / "keras-home" / "datasets"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _left_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- CIFAR-10 ---------------------------------------------------------------------------------------------


def test_cifar10_downloads_into_kerass_cache_once_and_reads_it(
    tiny_cifar, server: Server, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = tiny_cifar.archive.read_bytes()
    server.routes["/mirror/cifar-10-python.tar.gz"] = ("ok", body)
    monkeypatch.setattr(cifar, "ARCHIVE", replace(cifar.ARCHIVE, checksum=_sha256(body)))
    data = load_dataset("cifar10", image_size=8)
    assert len(data.test) == len(tiny_cifar.test_images)
    assert _left_in(cache) == ["cifar-10-python.tar.gz"]
    assert (cache / "cifar-10-python.tar.gz").read_bytes() == body
    assert "CIFAR-10 from " + str(cache / "cifar-10-python.tar.gz") in data.source
    load_dataset("cifar10", image_size=8)
    assert server.requests == ["/mirror/cifar-10-python.tar.gz"]  # the second load reads the cache


def test_an_md5_checksum_is_checked_the_same_way(
    tiny_cifar, server: Server, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = tiny_cifar.archive.read_bytes()
    server.routes["/mirror/cifar-10-python.tar.gz"] = ("ok", body)
    monkeypatch.setattr(cifar, "ARCHIVE", replace(cifar.ARCHIVE, checksum=hashlib.md5(body).hexdigest()))
    assert len(load_dataset("cifar10", image_size=8).test) == len(tiny_cifar.test_images)


def test_a_checksum_mismatch_is_one_line_and_leaves_nothing(tiny_cifar, server: Server, cache: Path) -> None:
    # The official SHA-256, which the tiny archive does not have.
    server.routes["/mirror/cifar-10-python.tar.gz"] = ("ok", tiny_cifar.archive.read_bytes())
    with pytest.raises(DataError) as error:
        load_dataset("cifar10")
    message = str(error.value)
    assert f"{server.url}/cifar-10-python.tar.gz" in message and "checksum is not the published one" in message
    assert "\n" not in message and MIRROR_ENV in message
    assert _left_in(cache) == []


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("truncated", "the transfer ended early"),
        ("html", "the server answered with an HTML page, not the archive"),
        ("missing", "the server answered HTTP 404 Not Found"),
    ],
)
def test_a_failed_transfer_is_one_line_naming_the_url_and_leaves_nothing(
    tiny_cifar, server: Server, cache: Path, monkeypatch: pytest.MonkeyPatch, how: str, expected: str
) -> None:
    body = tiny_cifar.archive.read_bytes()
    page = b"<!DOCTYPE html><html><body>Please log in</body></html>"
    if how != "missing":
        server.routes["/mirror/cifar-10-python.tar.gz"] = (how, page if how == "html" else body)
    monkeypatch.setattr(cifar, "ARCHIVE", replace(cifar.ARCHIVE, checksum=_sha256(body)))
    with pytest.raises(DataError) as error:
        load_dataset("cifar10")
    message = str(error.value)
    assert expected in message and f"{server.url}/cifar-10-python.tar.gz" in message and "\n" not in message
    assert _left_in(cache) == []


def test_an_interrupted_download_leaves_nothing(
    tiny_cifar, server: Server, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the middle of the transfer: the KeyboardInterrupt is raised in the main thread from the transfer's
    own progress callback once 64 KiB have arrived (an interrupt sent from another thread was swallowed somewhere
    in a long test process: the download then finished and the test could not tell), and nothing is left."""
    from cae.runtime import keras  # noqa: F401  (TensorFlow and Keras loaded as caesweep loads them)

    file_utils = importlib.import_module("keras.src.utils.file_utils")  # where keras.utils.get_file lives

    body = tiny_cifar.archive.read_bytes() + bytes(1024 * 1024)  # ~20 s at the slow route's pace
    server.routes["/mirror/cifar-10-python.tar.gz"] = ("slow", body)
    monkeypatch.setattr(cifar, "ARCHIVE", replace(cifar.ARCHIVE, checksum=_sha256(body)))
    partial: list[int] = []
    retrieve = file_utils.urlretrieve

    def ctrl_c_after_64_kib(url, filename, reporthook=None, data=None):
        def progress(blocks: int, size: int, total: int) -> None:
            if reporthook is not None:
                reporthook(blocks, size, total)
            if blocks * size >= 64 * 1024:
                partial.append(Path(filename).stat().st_size)  # the partial file, mid-transfer
                raise KeyboardInterrupt

        return retrieve(url, filename, progress, data)

    monkeypatch.setattr(file_utils, "urlretrieve", ctrl_c_after_64_kib)
    with pytest.raises(KeyboardInterrupt):
        load_dataset("cifar10")
    assert partial and 0 < partial[0] < len(body)  # it was interrupted with part of the archive on disk
    assert _left_in(cache) == []


def test_the_cli_says_it_in_one_line_with_exit_2(server: Server, cache: Path) -> None:
    done = in_process(data_main, "describe", "--data", "cifar10")
    assert done.returncode == 2 and done.stdout == ""  # the download's notice and progress go to stderr
    notice, *_, line = done.stderr.splitlines()
    assert notice.startswith("downloading CIFAR-10 (python version) (170 MB) from ")
    assert [e for e in done.stderr.splitlines() if e.startswith("error:")] == [line]
    assert line.startswith("error: cannot download CIFAR-10") and f"{server.url}/cifar-10-python.tar.gz" in line
    assert "HTTP 404" in line and _left_in(cache) == []


def test_a_mirror_that_is_not_http_is_refused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MIRROR_ENV, "ftp://example.org/data")
    with pytest.raises(DataError, match=f"{MIRROR_ENV}='ftp://example.org/data' is not an http"):
        load_dataset("cifar10")


def test_a_given_path_is_never_downloaded_to(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="CIFAR-10 not found"):
        load_dataset(f"cifar10:{tmp_path / 'nowhere'}")
    with pytest.raises(DataError, match="STL-10 not found"):
        load_dataset(f"stl10:{tmp_path / 'nowhere'}")
    assert server.requests == []


# --- STL-10 -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TinyStl:
    archive: Path
    folder: Path
    images: dict[str, np.ndarray]  # file name -> uint8 (N, 96, 96, 3)


def stl_bytes(images: np.ndarray) -> bytes:
    """uint8 images (N, 96, 96, 3) as an STL-10 file: per image 3 planes, each in column-major order."""
    return np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tobytes()


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def tiny_stl(tmp_path: Path) -> TinyStl:
    rng = np.random.default_rng(5)
    images = {name: rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
              for name, n in (("train_X.bin", 6), ("test_X.bin", 5), ("unlabeled_X.bin", 24))}
    members = {f"stl10_binary/{name}": stl_bytes(array) for name, array in images.items()}
    members["stl10_binary/test_y.bin"] = bytes(range(1, 6))
    members["stl10_binary/class_names.txt"] = b"airplane\nbird\n"
    folder = tmp_path / "extracted" / "stl10_binary"
    folder.mkdir(parents=True)
    for name, data in members.items():
        (folder.parent / name).write_bytes(data)
    (tmp_path / "download").mkdir()
    return TinyStl(_tar(tmp_path / "download" / "stl10_binary.tar.gz", members), folder, images)


def _rows(images: np.ndarray) -> list[bytes]:
    return sorted(image.tobytes() for image in images)


def _uint8(images: np.ndarray) -> np.ndarray:
    return np.rint((images + 1.0) * 127.5).astype(np.uint8)


@pytest.mark.parametrize("where", ["archive", "folder", "parent of folder"])
def test_stl10_maps_the_official_files_to_our_splits(tiny_stl: TinyStl, where: str) -> None:
    path = {"archive": tiny_stl.archive, "folder": tiny_stl.folder, "parent of folder": tiny_stl.folder.parent}
    data = load_dataset(f"stl10:{path[where]}", image_size=32)
    expected = {name: resize_images(array, 32) for name, array in tiny_stl.images.items()}
    assert _rows(_uint8(data.test)) == _rows(expected["test_X.bin"])  # the official test images, upright
    pool = np.concatenate([expected["train_X.bin"], expected["unlabeled_X.bin"]])
    assert _rows(_uint8(np.concatenate([data.train, data.val]))) == _rows(pool)
    # Each file is in both train and val, in proportion.
    assert set(data.origins["val"]) == {"official training images (train_X)", "unlabelled images (unlabeled_X)"}
    assert data.origins["test"] == {"official test images (test_X)": 5}


def test_stl10_reads_the_planes_column_major() -> None:
    # One image whose left half is red and right half blue: its file holds the red plane column by column.
    image = np.zeros((1, 96, 96, 3), dtype=np.uint8)
    image[0, :, :48, 0] = 255
    image[0, :, 48:, 2] = 255
    raw = stl_bytes(image)
    assert raw[: 48 * 96] == b"\xff" * (48 * 96) and raw[48 * 96 : 96 * 96] == bytes(48 * 96)
    back = stl10._images(io.BytesIO(raw), len(raw), "test", 32)
    assert (back[0, :, :14, 0] > 250).all() and (back[0, :, 18:, 2] > 250).all()


def test_stl10_downloads_itself_through_the_mirror(
    tiny_stl: TinyStl, server: Server, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = tiny_stl.archive.read_bytes()
    server.routes["/mirror/stl10_binary.tar.gz"] = ("ok", body)
    monkeypatch.setattr(stl10, "ARCHIVE", replace(stl10.ARCHIVE, checksum=hashlib.md5(body).hexdigest()))
    data = load_dataset("stl10", image_size=16)
    assert len(data.test) == 5 and _left_in(cache) == ["stl10_binary.tar.gz"]


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ({"stl10_binary/test_X.bin": bytes(27649)}, "a test_X.bin of 27,649 bytes, not a whole number of 96x96"),
        ({"stl10_binary/../evil": b"x"}, "a member name with '..'"),
        ({"stl10_binary/fold_indices.txt": bytes(2 * 2**20)}, "that is none of its image files"),
        ({"stl10_binary/train_X.bin": bytes(27648)}, "lacks test_X.bin, unlabeled_X.bin"),
    ],
)
def test_a_foreign_stl10_archive_is_refused(tmp_path: Path, members: dict[str, bytes], expected: str) -> None:
    archive = _tar(tmp_path / "stl10_binary.tar.gz", members)
    with pytest.raises(DataError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        load_dataset(f"stl10:{archive}")


def test_an_stl10_file_declaring_more_images_than_the_genuine_is_refused_from_its_header(tmp_path: Path) -> None:
    size = (stl10.GENUINE_IMAGES["unlabeled_X.bin"] + 1) * stl10.IMAGE_BYTES  # 2.8 GB of zeros, 3 MB on disk
    archive = gzip_tar_bomb(tmp_path / "stl10_binary.tar.gz", [("stl10_binary/unlabeled_X.bin", size, tarfile.REGTYPE)])
    started = time.perf_counter()
    with pytest.raises(DataError, match="a unlabeled_X.bin of 100,001 images, more than the genuine one's 100,000"):
        load_dataset(f"stl10:{archive}")
    assert time.perf_counter() - started < 5  # refused from the header, not after decompressing it


def test_the_bounds_leave_room_for_the_genuine_stl10_archive() -> None:
    genuine = sum(stl10.GENUINE_IMAGES.values()) * stl10.IMAGE_BYTES + 13_000 + 7 * 2 * tarfile.BLOCKSIZE
    assert genuine == pytest.approx(3.124e9, rel=1e-3) and genuine < stl10.MAX_ARCHIVE_BYTES
