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
killed mid-write leaves the previous complete version, never a half-written one.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cae.errors import StudyError

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
    ``sqlite:///.../<study>/optuna.db``: that, too, is read as the study's own file.
    """
    value = meta.get("storage")
    if value is None:
        return None if meta.get("engine") == "keras-tuner" else paths.default_storage_url()
    value = str(value)
    if value == IN_FOLDER_STORAGE:
        return paths.default_storage_url()
    if value.startswith("sqlite:///"):
        path = Path(value.removeprefix("sqlite:///"))
        if path.name == "optuna.db" and path.parent.name == paths.name:
            return paths.default_storage_url()
    return value


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


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``path`` so that readers see either the old or the new content, never a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_meta(paths: StudyPaths, meta: Mapping[str, Any]) -> None:
    write_atomic(paths.meta, json.dumps(dict(meta), indent=2, sort_keys=True, default=str) + "\n")


def read_meta(paths: StudyPaths) -> dict[str, Any]:
    """The study's metadata; a missing or corrupt study.json is a :class:`StudyError`."""
    if not paths.folder.is_dir():
        raise StudyError(
            f"study {paths.name!r} does not exist under {paths.root}; "
            f"`python -m search list --root {paths.root}` shows the studies there"
        )
    try:
        with paths.meta.open("rb") as file:
            raw = file.read(MAX_META_BYTES + 1)
    except FileNotFoundError:
        raise StudyError(f"{paths.meta} is missing: {paths.folder} is not a caesweep study folder") from None
    except OSError as exc:
        raise StudyError(f"{paths.meta} cannot be read ({exc.strerror}); check its permissions") from None
    if len(raw) > MAX_META_BYTES:
        raise StudyError(f"{paths.meta} is larger than {MAX_META_BYTES:,} bytes, so it is not a study.json; restore it")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        # RecursionError: nesting thousands deep, which Python's json parser cannot follow.
        raise StudyError(f"{paths.meta} is corrupt (not valid JSON); restore it or start a new study") from None
    if not isinstance(meta, dict) or meta.get("name") != paths.name:
        raise StudyError(f"{paths.meta} does not describe study {paths.name!r}")
    return meta


def list_studies(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the study folders under ``root`` (folders with a study.json), sorted."""
    base = Path(root) if root is not None else DEFAULT_ROOT
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "study.json").is_file() and _NAME.match(p.name))
