"""Official dataset archives that download themselves into Keras's cache, checked against their published checksum.

``--data cifar10`` (or ``stl10``) with no archive on disk downloads the official archive with Keras's own
:func:`keras.utils.get_file` into Keras's cache folder, ``$KERAS_HOME/datasets/`` (default
``~/.keras/datasets/``), where ``keras.datasets`` and a manual download put it too. The transfer goes to a hidden
``.<name>.<pid>.part`` file beside it; Keras verifies the published checksum (SHA-256 or MD5, whichever the
publisher gives), and only then is the file renamed to its official name and read, by the dataset's own safe
reader. A failed, interrupted or truncated transfer, an HTML page where the archive should be and a checksum
mismatch are each one line (:class:`~cae.errors.DataError`, exit code 2) naming the URL, and leave no file in
the cache.

``CAESWEEP_DATA_MIRROR=URL`` replaces the origin: the archive is fetched from ``URL/<official file name>``
(a lab mirror, an air-gapped site's web server, a test's loopback server); the checksums stay the official ones,
so a mirror can only serve the genuine file.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import sys
import urllib.error
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from cae.errors import DataError

MIRROR_ENV = "CAESWEEP_DATA_MIRROR"
_PART = ".part"
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")


@dataclass(frozen=True)
class Archive:
    """An official archive: what it is, its file name (also its name on a mirror), its origin, its published
    checksum (64 hex digits: SHA-256; 32: MD5) and its size in bytes (for the message that starts a download)."""

    title: str
    filename: str
    url: str
    checksum: str
    size: int

    def __post_init__(self) -> None:
        if len(self.checksum) not in (32, 64) or any(c not in "0123456789abcdef" for c in self.checksum):
            raise ValueError(f"{self.title}: a checksum is 32 (MD5) or 64 (SHA-256) lower-case hex digits")


def cache_folder() -> Path:
    """Keras's dataset cache: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser() / "datasets"


def origin(archive: Archive) -> str:
    """Where ``archive`` is fetched from: the official URL, or ``$CAESWEEP_DATA_MIRROR/<file name>``."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return archive.url
    if urllib.parse.urlsplit(mirror).scheme not in ("http", "https"):
        raise DataError(f"{MIRROR_ENV}={mirror!r} is not an http:// or https:// URL; set it to a mirror's URL")
    return f"{mirror.rstrip('/')}/{archive.filename}"


def fetch(archive: Archive) -> Path:
    """Download ``archive`` into :func:`cache_folder`, verify its checksum and return its path there.

    Raises:
        DataError: the cache cannot be written, the transfer fails or is cut short, the server answers with an
            error or an HTML page, or the file's checksum is not the published one; nothing is left in the cache.
    """
    folder = cache_folder()
    url = origin(archive)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create Keras's dataset cache {folder} ({exc.strerror}); set KERAS_HOME") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"Keras's dataset cache {folder} is not writable; set KERAS_HOME to a writable folder")
    part = folder / f".{archive.filename}.{os.getpid()}{_PART}"
    algorithm = "SHA-256" if len(archive.checksum) == 64 else "MD5"
    print(f"downloading {archive.title} ({archive.size / 1e6:,.0f} MB) from {url} into {folder}, checked against "
          f"its published {algorithm}", file=sys.stderr, flush=True)
    from cae.runtime import keras  # TensorFlow's import (~4 s) is paid only by a download

    try:
        # Keras prints its progress bar to stdout; it goes to stderr, so that stdout stays the command's output
        # (python -m cae.data describe --json).
        with contextlib.redirect_stdout(sys.stderr):
            saved = Path(keras.utils.get_file(
                fname=part.name, origin=url, file_hash=archive.checksum, cache_dir=str(folder.parent),
                cache_subdir=folder.name,
            ))
        if saved != part:  # get_file falls back to /tmp when the cache is not writable: not where we look
            saved.unlink(missing_ok=True)
            raise DataError(f"Keras saved {archive.filename} to {saved.parent}, not {folder}; set KERAS_HOME")
        final = folder / archive.filename
        os.replace(part, final)
    except BaseException as exc:
        problem = _problem(exc, part)
        part.unlink(missing_ok=True)
        if problem is None:  # Ctrl-C, or a bug: as it is, the partial file gone
            raise
        raise DataError(
            f"cannot download {archive.title} from {url}: {problem}; nothing was kept in {folder}. Try again, set "
            f"{MIRROR_ENV} to a mirror that holds {archive.filename}, or put the file in {folder} yourself"
        ) from None
    return final


def _problem(exc: BaseException, part: Path) -> str | None:
    """What went wrong with a download, in a few words (None: not a download problem)."""
    if isinstance(exc, DataError):
        return str(exc)
    if isinstance(exc, ValueError) and "hash" in str(exc):  # get_file's checksum mismatch
        if _looks_like_html(part):
            return "the server answered with an HTML page, not the archive"
        size = part.stat().st_size if part.exists() else 0
        return f"its checksum is not the published one ({size:,} bytes received): a truncated or different file"
    cause = exc.__context__ if exc.__context__ is not None else exc
    if isinstance(cause, (urllib.error.ContentTooShortError, http.client.IncompleteRead)):
        return "the transfer ended early (fewer bytes than the server announced)"
    if isinstance(cause, http.client.HTTPException):
        return f"the server's answer is not valid HTTP ({type(cause).__name__})"
    if isinstance(cause, urllib.error.HTTPError):
        return f"the server answered HTTP {cause.code} {cause.reason}"
    if isinstance(cause, urllib.error.URLError):
        return f"the server cannot be reached ({cause.reason})"
    if isinstance(cause, OSError):
        return f"{cause.strerror or cause}"
    if type(exc) is Exception and str(exc).startswith("URL fetch failure"):
        return str(exc)
    return None


def _looks_like_html(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            head = file.read(512).lstrip().lower()
    except OSError:
        return False
    return head.startswith(_HTML_STARTS)
