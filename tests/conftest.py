"""Shared fixtures: tiny datasets written to ``tmp_path`` in the real formats, and a tiny embedded dataset."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cae.data import Dataset, load_dataset

# No test reaches the internet: a dataset that downloads itself when missing (plain cifar10, stl10) fetches from
# this loopback port, where nothing listens, unless a test of the downloads names its own loopback mirror.
os.environ["CAESWEEP_DATA_MIRROR"] = "http://127.0.0.1:9/"
# Nor does a sweep log to the user's MLflow server: only the MLflow tests name one (their own, on loopback).
os.environ.pop("MLFLOW_TRACKING_URI", None)

CIFAR_TRAIN_PER_BATCH = 20  # 5 batches: 100 official training images
CIFAR_TEST = 10


def read_study_table(path: str | Path) -> pd.DataFrame:
    """A study's trials.csv or history.csv as a test reads it: ids stay text. Else a hex trial id made only of
    digits (about 1 in 43 of them: (10/16)**8) or like ``1234e567`` becomes a float that matches no id."""
    return pd.read_csv(path, dtype={"trial_id": str, "repeat_of": str})


@pytest.fixture(scope="session")
def private_ray():
    """One private Ray for the in-process sweeps of this test process (``search.commands.run`` joins a Ray that
    is already up instead of starting its own): a sweep then costs its trials, not Ray's start and stop (~7 s
    wall). Tests whose guarantee is about processes (a killed driver, signals to a process group, clusters) run
    the CLI in a subprocess instead."""
    import ray

    from search.ray_engine import ray_init

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.pop("RAY_ADDRESS", None)
    ray_init(None)
    yield
    ray.shutdown()


def in_process(main: Callable[[Sequence[str] | None], int], *argv: str) -> subprocess.CompletedProcess:
    """Run a CLI's ``main`` in this process as its ``python -m`` form does (``cae.cli.run``: a user error is one
    line and exit code 2), capturing what it prints; the result reads like a finished subprocess's."""
    from cae.cli import run

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(main, list(argv))
    return subprocess.CompletedProcess(list(argv), code, out.getvalue(), err.getvalue())


@dataclass(frozen=True)
class TinyCifar:
    """A CIFAR-10 python version in miniature, as an extracted folder and as a tar.gz, plus its images."""

    folder: Path  # .../cifar-10-batches-py
    archive: Path  # .../cifar-10-python.tar.gz, members under cifar-10-batches-py/
    train_images: np.ndarray  # uint8 (100, 32, 32, 3), in batch order
    test_images: np.ndarray  # uint8 (10, 32, 32, 3)


def cifar_batch(images: np.ndarray, protocol: int = 2) -> bytes:
    """Pickle ``uint8`` images ``(N, 32, 32, 3)`` as an official CIFAR-10 batch (planar rows of 3072)."""
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {
        b"batch_label": b"tiny batch",
        b"labels": [i % 10 for i in range(len(images))],
        b"data": np.ascontiguousarray(data),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }
    return pickle.dumps(batch, protocol=protocol)


def write_cifar_folder(folder: Path, batches: dict[str, bytes]) -> None:
    """Write batches (name -> pickled bytes) and a batches.meta into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in batches.items():
        (folder / name).write_bytes(raw)
    meta = {b"label_names": [b"airplane", b"automobile"], b"num_cases_per_batch": CIFAR_TRAIN_PER_BATCH}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def write_tar(archive: Path, folder: Path) -> None:
    """Pack ``folder`` into a gzip tar with members under ``cifar-10-batches-py/``, like the official one."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")


@pytest.fixture
def tiny_cifar(tmp_path: Path) -> TinyCifar:
    rng = np.random.default_rng(123)
    train = rng.integers(0, 256, (5 * CIFAR_TRAIN_PER_BATCH, 32, 32, 3), dtype=np.uint8)
    test = rng.integers(0, 256, (CIFAR_TEST, 32, 32, 3), dtype=np.uint8)
    # Python 2 style (protocol 2) like the official files, except one batch at protocol 5 as Python 3 writes.
    batches = {
        f"data_batch_{i + 1}": cifar_batch(chunk, protocol=5 if i == 4 else 2)
        for i, chunk in enumerate(np.split(train, 5))
    }
    batches["test_batch"] = cifar_batch(test)
    folder = tmp_path / "extracted" / "cifar-10-batches-py"
    write_cifar_folder(folder, batches)
    archive = tmp_path / "download" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    write_tar(archive, folder)
    return TinyCifar(folder=folder, archive=archive, train_images=train, test_images=test)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Six usable images (JPEG and PNG, several sizes, one grayscale, one RGBA, one in a subfolder) and two
    unusable files (a text file and a corrupt PNG)."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(7)
    for name, (height, width) in {"a.jpg": (40, 30), "b.jpg": (64, 64), "c.png": (50, 100)}.items():
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(root / name)
    Image.fromarray(rng.integers(0, 256, (80, 33, 3), dtype=np.uint8)).save(root / "sub" / "d.jpeg")
    Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(root / "gray.png")
    Image.fromarray(rng.integers(0, 256, (36, 36, 4), dtype=np.uint8)).save(root / "rgba.png")
    (root / "notes.txt").write_text("not an image\n")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return root


@pytest.fixture(scope="session")
def tiny_dataset() -> Dataset:
    """The embedded dataset at 16x16, 16 images per split: for tests of anything downstream of the data."""
    return load_dataset("embedded", image_size=16, seed=0, limit=16)


@pytest.fixture(autouse=True)
def ctrl_c_stays_ctrl_c():
    """A test may not leave a SIGINT handler of its own behind (Ray Tune's, outside caesweep's tune_settings, does):
    later tests in the same process would find Ctrl-C swallowed. The handler is put back, and the test that left
    it fails, naming it."""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)
        pytest.fail(f"the test left SIGINT handled by {after!r} (was {before!r})")


# The test files that take longest (real sweeps, signals, clusters), longest first: they start before every
# other file, so that `make test`'s processes do not end waiting on one of them (each file runs in one process).
RUN_FIRST = (
    "search/test_sweep.py", "search/test_signals.py", "search/test_faults.py", "search/test_cluster.py",
    "search/test_relocation.py", "search/test_hyperband.py", "search/test_mlflow.py", "search/test_cluster_guide.py",
    "benchmarks/test_seeds.py",
    "search/test_kt_engine.py", "benchmarks/test_engines.py", "benchmarks/test_overhead.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent

    def rank(item: pytest.Item) -> int:
        name = Path(item.path).relative_to(tests).as_posix() if Path(item.path).is_relative_to(tests) else ""
        return RUN_FIRST.index(name) if name in RUN_FIRST else len(RUN_FIRST)

    items.sort(key=rank)  # stable: within a file, and among the other files, the order stays as collected
