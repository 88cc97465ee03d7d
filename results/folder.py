"""The study folder: the only code that knows where a study's files live and how they are written.

::

    <root>/<study>/
      study.json     metadata: space, task, data, sampler, scheduler, seeds, engine, versions, git commit, times
      optuna.db      Optuna RDB storage (SQLite) unless the study names another SQLAlchemy URL; on a local disk in
                     WAL mode, with optuna.db-wal / optuna.db-shm beside it (part of it: copy the folder whole)
      ray/run-N/     the Ray Tune experiments (restorable) with the trial checkpoints
      kt/            the keras-tuner project, for studies run with --engine keras-tuner
      trials.csv     one row per trial: params, status, metrics, epochs, seconds, node
      history.csv    one row per trial and epoch
      models/        the final (best-epoch) model of each finished trial, <trial_id>.keras
      tensorboard/   one TensorBoard run per trial, <trial_id>/ (curves in train/ and validation/, HParams)
      report/        written by ``python -m analysis.report``
      .lock          held by the one process that may write the study

Every file is written atomically (a temporary file in the same folder, then ``os.replace``), so a driver
killed mid-write leaves the previous complete version, never a half-written one; no write follows a link and
every read is bounded (:mod:`results.files`).
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cae.errors import StudyError
from results.files import read_limited, write_atomic

DEFAULT_ROOT = Path("results")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
RESERVED = {"benchmarks"}  # sub-folders of the root that are not studies
# A study.json is a few KB (the resolved space, options, one entry per run); a larger one is not ours, and
# reading it is bounded.
MAX_META_BYTES = 16 * 2**20


def validate_name(name: str) -> str:
    """A study name is a single safe path component: letters, digits, '.', '_' and '-'."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name or name in RESERVED:
        raise StudyError(
            f"study name {name!r} is not allowed; use 1-100 letters, digits, '.', '_' or '-' "
            "(no path separators, no '..', not starting with '.')"
        )
    return name


def is_uri(root: str | os.PathLike[str]) -> bool:
    """True for ``s3://bucket/x``-style storage roots (no local folder)."""
    return "://" in str(root)


@dataclass(frozen=True)
class StudyPaths:
    """Where each file of one study lives."""

    root: Path
    name: str

    @property
    def folder(self) -> Path:
        return self.root / self.name

    @property
    def meta(self) -> Path:
        return self.folder / "study.json"

    @property
    def optuna_db(self) -> Path:
        return self.folder / "optuna.db"

    @property
    def ray_dir(self) -> Path:
        return self.folder / "ray"

    @property
    def kt_dir(self) -> Path:
        return self.folder / "kt"

    @property
    def trials_csv(self) -> Path:
        return self.folder / "trials.csv"

    @property
    def history_csv(self) -> Path:
        return self.folder / "history.csv"

    @property
    def models_dir(self) -> Path:
        return self.folder / "models"

    @property
    def tensorboard_dir(self) -> Path:
        """The study's TensorBoard log dir (``tensorboard --logdir`` it): one run per trial."""
        return self.folder / "tensorboard"

    @property
    def report_dir(self) -> Path:
        return self.folder / "report"

    @property
    def lock(self) -> Path:
        return self.folder / ".lock"

    def model_path(self, trial_id: str) -> Path:
        return self.models_dir / f"{trial_id}.keras"

    def tensorboard_run(self, trial_id: str) -> Path:
        return self.tensorboard_dir / trial_id

    def tensorboard_runs(self) -> list[str]:
        """The trial ids that have a TensorBoard run (none for a study made before trials wrote them)."""
        folder = self.tensorboard_dir
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def default_storage_url(self) -> str:
        return f"sqlite:///{self.optuna_db.resolve()}"


IN_FOLDER_STORAGE = "sqlite:///optuna.db"  # how study.json names the study's own SQLite storage


def storage_url(meta: Mapping[str, Any], paths: StudyPaths) -> str | None:
    """The Optuna storage URL of a stored study, resolved against where its folder is now (None: no storage,
    a keras-tuner study).

    ``study.json`` records the study's own file as the relative ``sqlite:///optuna.db``, so a copied or moved
    study uses its own copy. Studies recorded before storages were relative hold an absolute
    ``sqlite:///.../<study>/optuna.db``: that, too, is read as the study's own file. SQLite follows links, so the
    study's own database (and its journal files) must not be one (:func:`_own_database`).
    """
    value = meta.get("storage")
    if value is None:
        return None if meta.get("engine") == "keras-tuner" else _own_database(paths)
    value = str(value)
    if value == IN_FOLDER_STORAGE:
        return _own_database(paths)
    if value.startswith("sqlite:///"):
        path = Path(value.removeprefix("sqlite:///"))
        if path.name == "optuna.db" and path.parent.name == paths.name:
            return _own_database(paths)
    return value


SQLITE_FILES = ("", "-wal", "-shm", "-journal")  # the database and the files SQLite keeps beside it


def _own_database(paths: StudyPaths) -> str:
    """The URL of the study's own SQLite file, once it and its journal files are known to be regular files (or
    missing): SQLite opens and writes them through links, which would put a study's writes outside its folder."""
    for suffix in SQLITE_FILES:
        path = paths.optuna_db.with_name(paths.optuna_db.name + suffix)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StudyError(f"{path} cannot be read ({exc.strerror}); check its permissions") from None
        if not stat.S_ISREG(mode):
            kind = "a link" if stat.S_ISLNK(mode) else "not a regular file"
            raise StudyError(f"{path} is {kind}, so the study's Optuna storage is not opened (SQLite would read and "
                             "write through it); replace it with the file itself")
    return paths.default_storage_url()


def study_paths(name: str, root: str | os.PathLike[str] | None = None) -> StudyPaths:
    return StudyPaths(Path(root) if root is not None else DEFAULT_ROOT, validate_name(name))


def check_root_writable(root: Path) -> None:
    """Fail early (before any trial runs, before anything is created) when the results root cannot take a
    study: the root, or the nearest folder above it that exists, must take a 64 KiB file (a temporary probe,
    removed at once), or the disk is as good as full."""
    probe_dir = root
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir() or not os.access(probe_dir, os.W_OK | os.X_OK):
        raise StudyError(f"results root {root} is not writable (checked {probe_dir}); pass a writable --root")
    try:
        with tempfile.NamedTemporaryFile(dir=probe_dir, prefix=".caesweep-probe-") as probe:
            probe.write(b"x" * 65536)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise StudyError(f"results root {root} cannot be written ({exc.strerror}); free space or pass --root") from None


def write_meta(paths: StudyPaths, meta: Mapping[str, Any]) -> None:
    write_atomic(paths.meta, json.dumps(dict(meta), indent=2, sort_keys=True, default=str) + "\n", paths.folder)


def read_meta(paths: StudyPaths) -> dict[str, Any]:
    """The study's metadata; a missing or corrupt study.json is a :class:`StudyError`."""
    if not paths.folder.is_dir():
        raise StudyError(
            f"study {paths.name!r} does not exist under {paths.root}; "
            f"`python -m search list --root {paths.root}` shows the studies there"
        )
    try:
        raw = read_limited(paths.meta, MAX_META_BYTES)
    except FileNotFoundError:
        raise StudyError(f"{paths.meta} is missing: {paths.folder} is not a caesweep study folder") from None
    except OSError as exc:
        raise StudyError(f"{paths.meta} cannot be read ({exc.strerror}); check its permissions") from None
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        # RecursionError: nesting thousands deep, which Python's json parser cannot follow.
        raise StudyError(f"{paths.meta} is corrupt (not valid JSON); restore it or start a new study") from None
    if not isinstance(meta, dict) or meta.get("name") != paths.name:
        raise StudyError(f"{paths.meta} does not describe study {paths.name!r}")
    return meta


def list_studies(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the study folders under ``root`` (folders with a study.json), sorted. A study.json that is not a
    regular file (a link, a FIFO) still names a study, which its readers then report as unreadable."""
    base = Path(root) if root is not None else DEFAULT_ROOT
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if os.path.lexists(p / "study.json") and _NAME.match(p.name))
