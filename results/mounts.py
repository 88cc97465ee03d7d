"""Which filesystem a path lies on, read from the kernel's mount table (``/proc/self/mountinfo``).

SQLite relies on POSIX file locks, which network filesystems (NFS, SMB/CIFS, most FUSE mounts, 9p, Lustre,
GPFS, CephFS, GlusterFS...) implement unreliably or not at all: two processes may both believe they hold the
write lock and corrupt the database. caesweep warns (or refuses, on a multi-node cluster) when a study's
SQLite storage lies on one. The parsing is a pure function of the mountinfo text so it is tested on real
lines from such machines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")

# Filesystem types (mountinfo's fstype field) whose file locking SQLite cannot trust. FUSE mounts count as
# network filesystems (sshfs, s3fs, gcsfuse, juicefs...) except the local ones listed below.
NETWORK_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "lustre", "gpfs", "ceph", "glusterfs", "afs", "beegfs",
    "gfs2", "ocfs2", "panfs", "wekafs", "davfs", "fuse",
})
LOCAL_FUSE_TYPES = frozenset({"fuse.fuse-overlayfs", "fuse.lxcfs"})


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo: where a filesystem is mounted, its type and its source (device or server)."""

    point: str
    fstype: str
    source: str
    device: str = ""  # "major:minor", as os.stat(path).st_dev of a file on it gives

    @property
    def network(self) -> bool:
        """True when file locks on this filesystem cannot be trusted (see the module docstring)."""
        if self.fstype in LOCAL_FUSE_TYPES:
            return False
        return self.fstype in NETWORK_TYPES or self.fstype.startswith("fuse.")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (``\\040``)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of a mountinfo text, in the order the kernel lists them (later ones hide earlier ones)."""
    mounts = []
    for line in text.splitlines():
        before, sep, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue  # not a mountinfo line
        mounts.append(Mount(point=_unescape(fields[4]), fstype=tail[0], source=_unescape(tail[1]), device=fields[2]))
    return mounts


def mount_of(path: str | os.PathLike[str], mountinfo: str) -> Mount | None:
    """The mount that holds ``path`` (absolute, symbolic links resolved): the longest mount point that is
    ``path`` or a folder above it; of several mounts on that point, the last one (it hides the others)."""
    target = Path(path)
    best: Mount | None = None
    for mount in parse_mountinfo(mountinfo):
        point = Path(mount.point)
        if (target == point or point in target.parents) and (
            best is None or len(point.parts) >= len(Path(best.point).parts)
        ):
            best = mount
    return best


def filesystem_of(path: str | os.PathLike[str]) -> Mount | None:
    """The mount holding ``path`` on this machine (a path that does not exist yet: its nearest existing
    folder); None where the mount table cannot be read (not Linux)."""
    try:
        text = MOUNTINFO.read_text()
    except OSError:
        return None
    existing = Path(path).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return mount_of(existing.resolve(), text)
