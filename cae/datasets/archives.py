"""Reading an official dataset archive (a tar, gzip or not) as a stream, safely: shared by CIFAR-10 and STL-10.

An archive is read member by member through :class:`Budget`, which bounds how many bytes its decompression may
yield whatever its headers claim; every member header is checked (:func:`member_problem`) before its content is
read or skipped, and nothing is ever extracted to disk. No genuine archive of ours holds an absolute or ``..``
name, a link, a device or a sparse file, so one that does is refused outright.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zlib
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import BinaryIO, cast

from cae.errors import DataError

# What reading a truncated or foreign archive raises, whichever codec it is in.
READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)


def decompressed(compressed: BinaryIO) -> BinaryIO:
    """The archive's tar stream: decompressed by the codec its magic bytes name (the official archives are
    gzip), or as it is (a plain tar). The caller closes it."""
    head = compressed.read(6)
    compressed.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return cast(BinaryIO, gzip.GzipFile(fileobj=compressed))
    if head.startswith(b"BZh"):
        return cast(BinaryIO, bz2.BZ2File(compressed))
    if head.startswith(b"\xfd7zXZ\x00"):
        return cast(BinaryIO, lzma.LZMAFile(compressed))
    return compressed


class Budget(io.RawIOBase):
    """A read-only stream that gives at most ``limit`` bytes of ``source``, then raises ``refusal()``.

    This bounds what an archive costs whatever its headers claim, including the parts :mod:`tarfile` reads
    on its own (pax and GNU long-name headers, skipped member data).
    """

    def __init__(self, source: BinaryIO, limit: int, refusal: Callable[[], DataError]) -> None:
        super().__init__()
        self.source, self.limit, self.refusal, self.given = source, limit, refusal, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        room = self.limit - self.given + 1  # one byte over the budget tells a bomb from a full archive
        data = self.source.read(room if size is None or size < 0 else min(size, room))
        self.given += len(data)
        if self.given > self.limit:
            raise self.refusal()
        return data


def member_problem(member: tarfile.TarInfo) -> str | None:
    """What makes an archive member hostile, if anything: no genuine dataset archive has any of these."""
    if member.name.startswith("/"):
        return "an absolute member name"
    if ".." in PurePosixPath(member.name).parts:
        return "a member name with '..'"
    if member.issym() or member.islnk():
        return f"a link to {member.linkname}"
    if not (member.isfile() or member.isdir()):
        return "a special file (device or fifo)"
    if member.issparse():
        return "a sparse file"
    return None


def printable(name: str, limit: int = 80) -> str:
    """A member name fit for a one-line message: control characters escaped, at most ``limit`` characters."""
    text = name.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
