"""What in a study folder caesweep trusts: only what it wrote and signed itself.

A study folder travels (copied from a cluster's disk, handed from one person to another), and Ray Tune's saved
state in it holds pickles (``tuner.pkl``, the cloudpickled trial states inside ``experiment_state-*.json``,
``search_gen_state-*.json``, ``error.pkl``...): restoring a run unpickles them, and a pickle can run any code.
So every such file is signed as caesweep writes it (:mod:`search.ray_files`) with a key that never lies in a
study: HMAC-SHA256 over the file's name and bytes, in ``<file>.sig`` beside it. Before a run is restored, every
one of its files that Ray would unpickle must carry a valid signature (:func:`unsigned`); otherwise nothing of
the run is unpickled, and the study is rebuilt from what is plain data (see :mod:`search.ray_engine`).

The key is this user's: ``$CAESWEEP_CONFIG_DIR/key`` (default ``~/.config/caesweep/key``, or under
``$XDG_CONFIG_HOME``), 32 random bytes created on first use, readable by the user alone. A study signed on
another machine or by another user is therefore resumed as untrusted, which is correct: only the user's own
runs are trusted (copy the key to trust runs of a cluster you control).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cae.errors import StudyError

SIGNATURE_SUFFIX = ".sig"
KEY_BYTES = 32
MAX_SIGNED_BYTES = 1 << 30  # a saved state larger than this is not one caesweep wrote


def config_dir() -> Path:
    """Where caesweep keeps its per-user files (``CAESWEEP_CONFIG_DIR``, else the XDG config folder)."""
    explicit = os.environ.get("CAESWEEP_CONFIG_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "caesweep"


_key_cache: dict[Path, bytes] = {}


def key() -> bytes:
    """This user's signing key, created (mode 0600) on first use."""
    path = config_dir() / "key"
    if path in _key_cache:
        return _key_cache[path]
    try:
        value = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:  # another process created it meanwhile
            value = path.read_bytes()
        else:
            value = secrets.token_bytes(KEY_BYTES)
            with os.fdopen(fd, "wb") as stream:
                stream.write(value)
    except OSError as exc:
        raise StudyError(f"caesweep's signing key {path} cannot be read ({exc.strerror or exc}); set "
                         "CAESWEEP_CONFIG_DIR to a folder of your own") from None
    if len(value) != KEY_BYTES:
        raise StudyError(f"{path} is not a caesweep signing key ({len(value)} bytes, not {KEY_BYTES}); remove it "
                         "and a new one is made (studies signed with the old one are then resumed as untrusted)")
    _key_cache[path] = value
    return value


class Signer:
    """The signature of one file, computed while it is written (``update`` per chunk, then ``hexdigest``)."""

    def __init__(self, name: str) -> None:
        self._mac = hmac.new(key(), name.encode() + b"\0", hashlib.sha256)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._mac.update(data)

    def hexdigest(self) -> str:
        return self._mac.hexdigest()


def signature_path(path: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(path)}{SIGNATURE_SUFFIX}")


MAX_DIGESTS = 3  # a signature file lists at most this many: the file's, and those of the versions it replaces


def write_signature(path: str | os.PathLike[str], digest: str, *previous: str) -> None:
    """Write ``<path>.sig`` whole (a temporary file renamed over it), replacing a link instead of following it.

    ``previous``: digests the file may still have while it is being replaced (see :func:`replace_signed`)."""
    target = signature_path(path)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.partial")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as stream:
        stream.write("".join(f"{line}\n" for line in (digest, *previous)[:MAX_DIGESTS]))
    os.replace(temporary, target)


def _listed(path: str | os.PathLike[str]) -> list[str]:
    """The digests ``<path>.sig`` lists now (none if it is missing, a link or larger than any caesweep writes)."""
    sig = signature_path(path)
    try:
        if sig.is_symlink() or sig.stat().st_size > 256:
            return []
        return [line.strip() for line in sig.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return []


def replace_signed(temporary: str | os.PathLike[str], path: str | os.PathLike[str], digest: str) -> None:
    """Rename the whole, newly written ``temporary`` (of signature ``digest``) over ``path``, its signature
    valid at every instant: a process killed between any two steps leaves a file its signature file vouches for.

    The signature file first lists the new digest beside those it listed (the file still in place), then the
    file is renamed, then the signature file lists the new digest alone. Renaming first and signing after left,
    to a driver killed in between (CI met it once), a new file under its predecessor's signature: the run was
    then resumed as untrusted. Carrying the old lines over unread is safe: a digest vouches only for bytes whose
    HMAC under this user's key it is."""
    write_signature(path, digest, *_listed(path))
    os.replace(temporary, path)
    write_signature(path, digest)


def sign_file(path: str | os.PathLike[str]) -> None:
    """Sign a file caesweep has just written itself (read back whole)."""
    signer = Signer(Path(path).name)
    signer.update(Path(path).read_bytes())
    write_signature(path, signer.hexdigest())


def problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be trusted (None: it carries this user's valid signature). Only regular files are
    read, and only up to :data:`MAX_SIGNED_BYTES`: a link, a FIFO or a huge file is refused unread."""
    file, sig = Path(path), signature_path(path)
    for candidate in (file, sig):
        if candidate.is_symlink() or not candidate.is_file():
            return f"{candidate.name} is {'a link' if candidate.is_symlink() else 'missing or not a regular file'}"
    if file.stat().st_size > MAX_SIGNED_BYTES or sig.stat().st_size > 256:
        return f"{file.name} is larger than any state caesweep writes"
    signer = Signer(file.name)
    with open(file, "rb") as stream:
        while chunk := stream.read(1 << 20):
            signer.update(chunk)
    actual = signer.hexdigest()
    listed = sig.read_text(errors="replace").split()[:MAX_DIGESTS]
    # every listed digest compared (no early exit): the time taken says nothing about which one matched
    if not [digest for digest in listed if hmac.compare_digest(actual, digest)]:
        return f"{file.name}'s signature is not this user's"
    return None


def unsigned(paths: list[Path]) -> str | None:
    """The first reason one of ``paths`` cannot be trusted (None: all are signed by this user)."""
    for path in sorted(paths):
        reason = problem(path)
        if reason is not None:
            return reason
    return None
