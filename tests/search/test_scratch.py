"""A trial's scratch folders (a checkpoint before Ray copies it) left by a killed worker are removed by a later
trial; those of running processes, and young ones, are kept."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from search.trial import SCRATCH_MIN_AGE_S, SCRATCH_PREFIX, remove_orphaned_scratch, scratch_folder


def folder(root: Path, name: str, age_s: float) -> Path:
    path = root / name
    path.mkdir()
    (path / "model.keras").write_bytes(b"weights")
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_only_old_folders_of_processes_that_ended_are_removed(tmp_path: Path) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    old = SCRATCH_MIN_AGE_S + 60
    orphan = folder(tmp_path, f"{SCRATCH_PREFIX}{ended.pid}-abc123", old)
    young = folder(tmp_path, f"{SCRATCH_PREFIX}{ended.pid}-def456", 1.0)  # its writer may live elsewhere
    alive = folder(tmp_path, f"{SCRATCH_PREFIX}{os.getpid()}-ghi789", old)
    other = folder(tmp_path, "caesweep-overhead-xyz", old)
    loose = tmp_path / f"{SCRATCH_PREFIX}{ended.pid}-file"
    loose.write_text("not a folder")
    os.utime(loose, (time.time() - old, time.time() - old))

    assert remove_orphaned_scratch(str(tmp_path)) == [orphan]
    assert not orphan.exists()
    assert young.exists() and alive.exists() and other.exists() and loose.exists()
    assert remove_orphaned_scratch(str(tmp_path)) == []


def test_a_scratch_folder_is_named_after_its_process_and_removed_when_done() -> None:
    with scratch_folder() as path:
        assert Path(path).name.startswith(f"{SCRATCH_PREFIX}{os.getpid()}-")
    assert not Path(path).exists()
