"""Reading and writing the files of a folder that may hold anything: links, FIFOs, devices, huge files.

A study folder travels (from a colleague, a cluster's disk, an archive), so whatever lies in it is data: a file
may be a link to somewhere else, a FIFO, or a link to ``/dev/zero``. The rules here hold for every file caesweep
writes into or reads from it:

- **Writes never follow a link.** Every folder from ``within`` (the folder the user named: the study folder, or
  ``--out``) down to the file is opened with ``O_NOFOLLOW`` relative to the one above it, so a link among them
  (``report/`` -> ``/elsewhere``) is refused, never followed, and cannot be swapped in between a check and the
  write. The file itself is written to a temporary file beside it and renamed over the old one: a link there is
  replaced, not written through, and a reader (or a full disk) sees the old file or the new one, never part of
  one. Appends (``sweep.log``) open the file with ``O_NOFOLLOW | O_APPEND`` and replace a link with a new file.
- **Reads are bounded.** A file is read only when it is a regular file and not a link, and only up to a size
  cap: a FIFO is refused without waiting for a writer, a link to ``/dev/zero`` or a huge sparse file unread.

Refusals are :class:`StudyError`, one line naming the file, so a command says it in one line and a listing of
several studies marks one as unreadable and lists the others.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from cae.errors import StudyError

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO opens at once instead of waiting for its other end (it is refused right after); a regular
# file ignores the flag.
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_LINK_ERRORS = (errno.ELOOP, errno.EMLINK)  # what O_NOFOLLOW gives for a link (EMLINK: FreeBSD)


def _parts(path: Path, within: Path) -> tuple[str, ...]:
    """The names from ``within`` down to ``path`` (both taken as written, ``..`` folded without following links)."""
    relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(within))
    if not relative.parts:
        raise ValueError(f"{path} is the folder {within} itself, not a file in it")
    return relative.parts


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISLNK, "link"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "device"), (stat.S_ISBLK, "device")):
        if test(mode):
            return name
    return "special file"


def _link_target(path: Path) -> str:
    try:
        return f" (to {os.readlink(path)})"
    except OSError:
        return ""


def _refused(path: Path, exc: OSError) -> StudyError | OSError:
    """A link or a non-folder on the way to a file, as one line; any other error as it is. (Linux answers
    ``O_DIRECTORY | O_NOFOLLOW`` on a link with ENOTDIR, other systems with ELOOP: the folder entry decides.)"""
    if exc.errno not in (*_LINK_ERRORS, errno.ENOTDIR):
        return exc
    try:
        link = stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        link = exc.errno in _LINK_ERRORS
    if link:
        return StudyError(f"{path} is a link{_link_target(path)}, and caesweep writes through no link: replace it "
                          "with a folder of its own (or name the folder it points to)")
    if exc.errno == errno.ENOTDIR:
        return StudyError(f"{path} is not a folder; move it away")
    return exc


@contextmanager
def open_folder(folder: Path, within: Path | None = None, create: bool = True) -> Iterator[int]:
    """A file descriptor of ``folder``, reached from ``within`` without following any link below it.

    ``within`` (default: ``folder`` itself) is the folder the user named; it is created when missing (the path up
    to it is the user's own). Each folder below it is opened, or created when ``create``, one at a time relative
    to the one above with ``O_NOFOLLOW``: a link or a file in the way is a :class:`StudyError`.
    """
    base = Path(within) if within is not None else Path(folder)
    names = () if Path(os.path.abspath(folder)) == Path(os.path.abspath(base)) else _parts(folder, base)
    if create:
        base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        here = base
        for name in names:
            here = here / name
            try:
                try:
                    inner = os.open(name, _FOLDER, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with suppress(FileExistsError):
                        os.mkdir(name, 0o777, dir_fd=fd)
                    inner = os.open(name, _FOLDER, dir_fd=fd)
            except OSError as exc:
                raise _refused(here, exc) from None
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def check_writable(folder: Path, within: Path | None = None) -> None:
    """Make ``folder`` as :func:`open_folder` does (no link followed) and check that it takes a new file (one is
    created and removed at once); an ``OSError`` (or :class:`StudyError`) says why not."""
    with open_folder(folder, within) as fd:
        temporary, probe = _temporary(".probe", fd)
        os.close(probe)
        os.unlink(temporary, dir_fd=fd)


def _temporary(name: str, folder_fd: int) -> tuple[str, int]:
    temporary = f".{name}.{secrets.token_hex(6)}.tmp"
    return temporary, os.open(temporary, _NEW_FILE, 0o666, dir_fd=folder_fd)  # 0o666 less the umask


def _write_temporary(name: str, folder_fd: int, data: bytes | Path) -> str:
    """Write ``data`` (bytes, or the file at a path) whole into a new temporary file in the folder; on any
    failure (a full disk) nothing of it is left."""
    temporary, fd = _temporary(name, folder_fd)
    try:
        with os.fdopen(fd, "wb") as stream:
            if isinstance(data, Path):
                with open(data, "rb") as source:
                    shutil.copyfileobj(source, stream, 1 << 20)
            else:
                stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary, dir_fd=folder_fd)
        raise
    return temporary


def write_files(folder: Path, files: Mapping[str, str | bytes], within: Path | None = None) -> None:
    """Write several files of one folder, each whole: all are written to temporary files first, then each is
    renamed over its old version (a link there is replaced, not followed). A write that fails (a full disk)
    leaves every old file as it was. ``within``: see :func:`open_folder`."""
    with open_folder(folder, within) as fd:
        written: dict[str, str] = {}
        try:
            for name, data in files.items():
                if os.sep in name or name in ("", ".", ".."):
                    raise ValueError(f"{name!r} is not a file name")
                written[name] = _write_temporary(name, fd, data.encode("utf-8") if isinstance(data, str) else data)
            for name, temporary in list(written.items()):
                os.replace(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
                del written[name]
        finally:
            for temporary in written.values():
                with suppress(OSError):
                    os.unlink(temporary, dir_fd=fd)


def write_atomic(path: Path, data: str | bytes, within: Path | None = None) -> None:
    """Write ``path`` so that readers see either the old or the new content, never a partial file, and so that
    no link is followed: a link at ``path`` is replaced, a link among the folders from ``within`` (default: the
    file's own folder) down to it is refused (:func:`open_folder`)."""
    path = Path(path)
    write_files(path.parent, {path.name: data}, within)


def copy_atomic(source: Path, path: Path, within: Path | None = None) -> None:
    """Copy the file ``source`` to ``path`` as :func:`write_atomic` writes: whole or not at all (a copy cut short
    by a full disk leaves no partial file), replacing a link at ``path``, refusing one on the way to it."""
    path = Path(path)
    with open_folder(path.parent, within) as fd:
        temporary = _write_temporary(path.name, fd, Path(source))
        try:
            os.replace(temporary, path.name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            with suppress(OSError):
                os.unlink(temporary, dir_fd=fd)
            raise


def append_text(path: Path, text: str, within: Path | None = None) -> None:
    """Append ``text`` to the regular file ``path`` (created when missing). A link there is replaced by a new
    file, never written through; anything else that is not a regular file (a FIFO, a folder) is refused."""
    append_bytes(path, text.encode("utf-8"), within)


def append_bytes(path: Path, data: bytes, within: Path | None = None) -> None:
    """:func:`append_text` for bytes (one write: a reader sees whole appends)."""
    path = Path(path)
    with open_folder(path.parent, within) as folder:
        try:
            fd = os.open(path.name, _APPEND, 0o666, dir_fd=folder)
        except OSError as exc:
            if exc.errno not in _LINK_ERRORS:
                raise _not_regular(path) if exc.errno in (errno.ENXIO, errno.EISDIR) else exc from None
            os.unlink(path.name, dir_fd=folder)  # a link is not the log: a new file takes its place
            fd = os.open(path.name, _APPEND | os.O_EXCL, 0o666, dir_fd=folder)
        with os.fdopen(fd, "ab") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise _not_regular(path)
            stream.write(data)


def _not_regular(path: Path) -> StudyError:
    try:
        kind = _kind(os.lstat(path).st_mode)
    except OSError:
        kind = "special file"
    return StudyError(f"{path} is a {kind}, not a regular file; move it away")


def read_limited(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, read only when it is a regular file (not a link, a FIFO or a device) of at most
    ``limit`` bytes; otherwise a :class:`StudyError` naming it. A missing file raises ``FileNotFoundError``."""
    path = Path(path)
    try:
        fd = os.open(path, _READ)
    except OSError as exc:
        if exc.errno in _LINK_ERRORS:
            raise StudyError(f"{path} is a link{_link_target(path)}; caesweep reads a study's files only from inside "
                             "it: replace the link with the file itself") from None
        raise
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(stream.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise StudyError(f"{path} is a {_kind(info.st_mode)}, not a regular file, so it is not read; "
                             "replace it with the file itself")
        if info.st_size > limit:
            raise StudyError(f"{path} is larger than {limit:,} bytes ({info.st_size:,}), larger than any that "
                             "caesweep writes, so it is not read; restore it")
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise StudyError(f"{path} grew past {limit:,} bytes while it was read; restore it")
    return data
