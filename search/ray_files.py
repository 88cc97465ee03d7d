"""How Ray Tune's files land in a local study folder: its state whole or not at all, trial files written once.

Ray Tune keeps a run's state (``experiment_state-*.json``, the searcher's ``searcher-state-*.pkl``) in a
staging folder and copies it into the study's ``ray/run-N/`` about once a second, *in place*: a driver killed
(SIGKILL, a lost node, an out-of-memory kill) in the middle of that copy leaves a truncated file, and the next
``resume`` cannot read the run's state. Ray then restarts the experiment from nothing, or goes on without the
searcher's bookkeeping: a study that no longer tells the truth.

:func:`atomic_local` is pyarrow's local filesystem with one change: a file opened for writing is written to a
hidden temporary file next to it and renamed over the destination when it is closed (``os.replace``, atomic
on POSIX filesystems, NFS included). A killed copy leaves the previous complete file and, at worst, a hidden
``.*.partial`` file that nothing reads. Only Ray's state files are written so (:data:`STATE_FILES`); every
other file, trial checkpoints included, goes through pyarrow's own streams (a checkpoint is registered only
once it is copied).

:class:`TrialFiles` writes each trial's ``result.json`` (appended, a line per result) and ``params.json`` /
``params.pkl`` straight into the trial's folder in the study, where Ray's ``JsonLoggerCallback`` writes them
into the staging folder that Ray copies whole into the study at every state save: at 2,000 trials, 8,000 files
copied again every few seconds, a cost per save that grows with the study. Without them the staging folder
holds only Ray's state, and a save copies a handful of files whatever the study's size.

Checkpoints Ray lets go of are deleted only once a saved state no longer names them. Ray keeps a trial's best and
latest checkpoint and deletes the one a new checkpoint supersedes at once, but saves the run's state at most
every ``TUNE_GLOBAL_CHECKPOINT_S``: a driver killed in between leaves a state whose trial resumes from a
checkpoint that is gone ("Could not recover from checkpoint as it does not exist on storage anymore"; the trial
then fails every retry: seen here once in ~10 SIGKILL tests). So a deleted ``checkpoint_*`` folder is first
renamed ``.deleted-checkpoint_*`` and removed when the run's next ``experiment_state-*.json`` is complete;
:func:`restore_deleted_checkpoints` puts such folders back before a killed run is restored.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import pyarrow
import pyarrow.fs as pafs
from ray.tune.logger import LoggerCallback
from ray.tune.utils.util import SafeFallbackEncoder

import results
from results import trust

PARTIAL = ".partial"  # the suffix of a file still being written
# What Ray reads to restore a run (Tune's own names), written whole and signed (results.trust: Ray unpickles
# them). Every other file goes through pyarrow's own stream: each one costs a Python call per copy here, and Ray
# copies its staging folder whole at every save.
STATE_FILES = ("experiment_state-*.json", "search_gen_state-*.json", "basic-variant-state-*.json",
               "searcher-state-*.pkl", "callback-states-*.pkl", "tuner.pkl", "trainable.pkl", "error.pkl")


DELETED = ".deleted-"  # the prefix of a checkpoint folder Ray deleted that a saved state may still name
RUN_STATE = "experiment_state-*.json"  # the file that names a run's trials and their checkpoints


def is_state_file(path: str) -> bool:
    name = os.path.basename(path)
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in STATE_FILES)


def state_files(run: str | os.PathLike[str]) -> list[Path]:
    """Every file of run folder ``run`` that restoring it would unpickle: Ray's state files, any other pickle
    beside them, and each trial's ``error.pkl``."""
    folder = Path(run)
    top = [p for p in folder.iterdir() if not p.name.startswith(".") and not p.name.endswith(trust.SIGNATURE_SUFFIX)
           and not (p.is_dir() and not p.is_symlink())]
    found = {p for p in top if is_state_file(str(p)) or p.suffix == ".pkl"}
    found.update(folder.glob("trial_*/error.pkl"))
    return sorted(found)


def unsigned_state(run: str | os.PathLike[str]) -> str | None:
    """Why run folder ``run`` must not be restored (a file Ray would unpickle that this user did not sign);
    None when every such file carries this user's signature."""
    files = state_files(run)
    if not any(fnmatch.fnmatchcase(p.name, RUN_STATE) for p in files):
        return "it has no saved state"
    return trust.unsigned(files)


class _DeletedCheckpoints:
    """The checkpoint folders this process set aside, by run folder, until a state saved after it is whole.

    Kept per process, not per filesystem object: Ray deletes a checkpoint through the filesystem its result came
    with (a copy unpickled from the trial's worker), and saves the state through the run's own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_run: dict[str, list[str]] = {}

    def add(self, run: str, aside: str) -> None:
        with self._lock:
            self._by_run.setdefault(run, []).append(aside)

    def count(self, run: str) -> int:
        with self._lock:
            return len(self._by_run.get(run, ()))

    def purge(self, run: str, count: int) -> None:
        """Remove the first ``count`` folders set aside in ``run`` (those a state saved since no longer names)."""
        with self._lock:
            pending = self._by_run.get(run, [])
            done, self._by_run[run] = pending[:count], pending[count:]
        for aside in done:
            shutil.rmtree(aside, ignore_errors=True)


_deleted = _DeletedCheckpoints()


def _set_aside(path: str) -> bool:
    """Rename a checkpoint folder Ray deletes to ``.deleted-<name>`` beside it; False for any other folder."""
    folder, name = os.path.split(path.rstrip("/"))
    if not name.startswith("checkpoint_"):
        return False
    aside = os.path.join(folder, f"{DELETED}{name}")
    shutil.rmtree(aside, ignore_errors=True)  # set aside before, by a driver killed since
    os.replace(path, aside)
    _deleted.add(os.path.dirname(folder), aside)  # checkpoints lie in <run>/trial_<id>/
    return True


def restore_deleted_checkpoints(folder: str | os.PathLike[str]) -> list[Path]:
    """Put back the checkpoint folders a killed driver had set aside in run ``folder`` (its last saved state may
    name them); the folders restored. One whose name is taken again (a trial that wrote it anew) is removed."""
    restored = []
    for aside in sorted(Path(folder).glob(f"trial_*/{DELETED}checkpoint_*")):
        original = aside.with_name(aside.name.removeprefix(DELETED))
        if original.exists():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(aside, original)
            restored.append(original)
    return restored


class _AtomicFile:
    """A binary file written under a temporary name and renamed to ``path`` when closed without error."""

    def __init__(self, path: str) -> None:
        folder, name = os.path.split(path)
        # A run's state file: once it is whole, the checkpoints set aside before it was begun are named by no
        # state any more.
        self._run = folder if fnmatch.fnmatchcase(name, RUN_STATE) else None
        self._set_aside = _deleted.count(folder) if self._run else 0
        self._signer = trust.Signer(name)  # signed as written: Ray unpickles what it restores from this file
        self.path = path
        self.temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}{PARTIAL}")
        self._stream = open(self.temporary, "wb")  # noqa: SIM115 (closed in close())
        self.closed = False
        self._failed = False

    def write(self, data: Any) -> int:
        try:
            self._signer.update(data)
            return self._stream.write(data)
        except BaseException:
            self._failed = True  # a full disk, say: keep the previous file, not part of a new one
            raise

    def flush(self) -> None:
        self._stream.flush()

    def tell(self) -> int:
        return self._stream.tell()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._stream.close()
        except BaseException:
            self._failed = True
            raise
        finally:
            if self._failed:
                os.unlink(self.temporary)
        trust.replace_signed(self.temporary, self.path, self._signer.hexdigest())
        if self._run is not None:
            _deleted.purge(self._run, self._set_aside)


class AtomicLocalHandler(pafs.FileSystemHandler):
    """pyarrow's LocalFileSystem, except that written files appear whole (see the module's docstring)."""

    def __init__(self) -> None:
        self._fs = pafs.LocalFileSystem()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AtomicLocalHandler)

    def __hash__(self) -> int:
        return hash(AtomicLocalHandler)

    def __reduce__(self) -> tuple[Any, ...]:  # sent to Ray's trial workers with the storage context
        return (AtomicLocalHandler, ())

    def get_type_name(self) -> str:
        return "caesweep-atomic-local"

    def normalize_path(self, path: str) -> str:
        return self._fs.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self._fs.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self._fs.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self._fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        if not _set_aside(path):  # a checkpoint goes once no saved state names it (see the module's docstring)
            self._fs.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self._fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("caesweep never deletes the contents of the filesystem's root")

    def delete_file(self, path: str) -> None:
        self._fs.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self._fs.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        with self._fs.open_input_stream(src) as source, self.open_output_stream(dest, None) as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)

    def open_input_stream(self, path: str) -> pyarrow.NativeFile:
        return self._fs.open_input_stream(path)

    def open_input_file(self, path: str) -> pyarrow.NativeFile:
        return self._fs.open_input_file(path)

    def open_output_stream(self, path: str, metadata: dict[str, str] | None) -> pyarrow.NativeFile:
        if is_state_file(path):
            return pyarrow.PythonFile(_AtomicFile(path), mode="w")
        return self._fs.open_output_stream(path)

    def open_append_stream(self, path: str, metadata: dict[str, str] | None) -> pyarrow.NativeFile:
        return self._fs.open_append_stream(path)


def clear_partials(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the ``.partial`` files a killed driver left in a run's folder (only the driver holding the study's
    lock writes there, so at a resume every one is a dead writer's); the files removed."""
    partials = [p for p in Path(folder).glob(f".*{PARTIAL}") if p.is_file()]
    for path in partials:
        path.unlink(missing_ok=True)
    return partials


def recorded_trials(folder: str | os.PathLike[str]) -> set[str] | None:
    """The ids of the trials a run's saved state lists (Ray's newest ``experiment_state-*.json``, the file
    ``Tuner.restore`` reads); None when there is no readable state.

    Only JSON is read (each trial's state is a JSON string inside it): nothing in the file is executed.
    """
    states = sorted(Path(folder).glob("experiment_state-*.json"))
    if not states:
        return None
    try:
        data = json.loads(states[-1].read_text())
        return {str(json.loads(state)["trial_id"]) for state, _ in data["trial_data"]}
    except (OSError, ValueError, TypeError, KeyError):
        return None


def atomic_local() -> pafs.FileSystem:
    """The filesystem to hand Ray Tune (``storage_filesystem``) for a study folder on a local or mounted path."""
    return pafs.PyFileSystem(AtomicLocalHandler())


class TrialFiles(LoggerCallback):
    """Ray's per-trial result files (as ``JsonLoggerCallback`` writes them) written into the study's trial folder
    itself (``trial.storage.trial_fs_path``, a local path), not into the driver's staging folder: ``params.json``
    (replaced whole) and ``result.json`` (a line appended per result), through no link from the study folder down
    (:mod:`results.files`). Ray's ``params.pkl`` is not written: nothing reads it, and a study holds no pickle
    that caesweep did not sign."""

    def __init__(self) -> None:
        self._started: set[Any] = set()

    def log_trial_start(self, trial: Any) -> None:
        folder = Path(trial.storage.trial_fs_path)
        study = folder.parents[2]  # <study>/ray/<run>/trial_<id>
        params = json.dumps(trial.config, indent=2, sort_keys=True, cls=SafeFallbackEncoder)
        results.write_atomic(folder / "params.json", params, study)
        self._started.add(trial)  # a resumed trial's result.json goes on where it was

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        if trial not in self._started:
            self.log_trial_start(trial)
        folder = Path(trial.storage.trial_fs_path)
        line = json.dumps(result, cls=SafeFallbackEncoder) + "\n"  # one write: a kill tears one line at most
        results.append_text(folder / "result.json", line, folder.parents[2])

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        self._started.discard(trial)

    def __getstate__(self) -> dict[str, Any]:  # pickled with the run's settings: which trials started is not state
        return {"_started": set()}
