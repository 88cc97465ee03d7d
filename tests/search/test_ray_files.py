"""Ray's files in a study folder appear whole or not at all, even when the writer is killed mid-file."""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from ray.train._internal.storage import _delete_fs_path

from results import trust
from search.ray_files import DELETED, PARTIAL, atomic_local, clear_partials, restore_deleted_checkpoints

# A writer that opens the destination through the atomic filesystem, writes half of the new content, and is
# SIGKILLed by itself before closing it: the kill lands mid-file by construction.
KILLED_WRITER = """
import os, signal, sys
from search.ray_files import atomic_local
stream = atomic_local().open_output_stream(sys.argv[1])
stream.write(b"new" * 1000)
stream.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_writer_killed_mid_file_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "searcher-state-x.pkl"
    target.write_bytes(b"old, complete")
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)], cwd=Path(__file__).parents[2])
    assert done.returncode == -9
    assert target.read_bytes() == b"old, complete"
    leftovers = [p.name for p in tmp_path.iterdir() if p != target]
    assert len(leftovers) == 1 and leftovers[0].startswith(".searcher-state-x.pkl.") and leftovers[0].endswith(PARTIAL)
    # resume clears what the dead writer left, and nothing else
    assert [p.name for p in clear_partials(tmp_path)] == leftovers
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_copies_and_writes_land_whole_and_the_filesystem_travels_to_workers(tmp_path: Path) -> None:
    source = tmp_path / "staging"
    (source / "sub").mkdir(parents=True)
    (source / "experiment_state-1.json").write_bytes(os.urandom(3_000_001))  # more than one copy chunk
    (source / "sub" / "b.pkl").write_bytes(b"b")
    fs = pickle.loads(pickle.dumps(atomic_local()))  # as Ray sends it with each trial's storage context
    destination = tmp_path / "run-1"
    (destination).mkdir()
    (destination / "experiment_state-1.json").write_bytes(b"older")
    pafs.copy_files(str(source), str(destination), destination_filesystem=fs)
    assert (destination / "experiment_state-1.json").read_bytes() == (source / "experiment_state-1.json").read_bytes()
    assert (destination / "sub" / "b.pkl").read_bytes() == b"b"
    assert not list(tmp_path.rglob(f"*{PARTIAL}"))
    fs.copy_file(str(destination / "sub" / "b.pkl"), str(destination / "c.pkl"))
    with fs.open_output_stream(str(destination / "d.txt")) as stream:
        stream.write(b"written")
    assert (destination / "c.pkl").read_bytes() == b"b" and (destination / "d.txt").read_bytes() == b"written"
    assert {i.base_name for i in fs.get_file_info(pafs.FileSelector(str(destination)))} == {
        "experiment_state-1.json", "experiment_state-1.json.sig", "sub", "c.pkl", "d.txt"}  # a state file signed


def test_a_deleted_checkpoint_goes_only_once_a_saved_state_no_longer_names_it(tmp_path: Path) -> None:
    """Ray deletes a superseded checkpoint at once but saves the run's state later: a driver killed in between left
    a state naming a checkpoint that was gone, and the trial failed every retry. A deleted checkpoint is set aside
    (through the filesystem a trial's result brings, a copy of the run's), removed when the next state file is
    whole, and put back by a resume if the driver died first."""
    run = tmp_path / "run-1"
    for name in ("checkpoint_000000", "checkpoint_000001"):
        (run / "trial_a" / name).mkdir(parents=True)
        (run / "trial_a" / name / "model.keras").write_bytes(name.encode())
    worker_fs = pickle.loads(pickle.dumps(atomic_local()))  # what a trial's checkpoint carries
    _delete_fs_path(fs=worker_fs, fs_path=str(run / "trial_a" / "checkpoint_000000"))  # as Ray deletes it
    aside = run / "trial_a" / f"{DELETED}checkpoint_000000"
    assert not (run / "trial_a" / "checkpoint_000000").exists() and aside.is_dir()

    # The driver is killed before the next save: the resume puts the checkpoint back, as the saved state has it.
    assert restore_deleted_checkpoints(run) == [run / "trial_a" / "checkpoint_000000"]
    assert (run / "trial_a" / "checkpoint_000000" / "model.keras").read_bytes() == b"checkpoint_000000"

    # The driver lives on: its next whole state file no longer names the checkpoint, which is then removed.
    _delete_fs_path(fs=worker_fs, fs_path=str(run / "trial_a" / "checkpoint_000000"))
    fs = atomic_local()
    with fs.open_output_stream(str(run / "searcher-state-1.pkl")) as stream:  # not the file naming checkpoints
        stream.write(b"state")
    assert aside.is_dir()
    with fs.open_output_stream(str(run / "experiment_state-1.json")) as stream:
        stream.write(b"{}")
    assert not aside.exists() and (run / "trial_a" / "checkpoint_000001").is_dir()
    assert restore_deleted_checkpoints(run) == []
    (run / "trial_a" / "other").mkdir()  # any other folder is deleted at once
    fs.delete_dir(str(run / "trial_a" / "other"))
    assert sorted(p.name for p in (run / "trial_a").iterdir()) == ["checkpoint_000001"]


class _Killed(BaseException):
    """The writer's death at a chosen instant (nothing in the writer catches it, as nothing outlives SIGKILL)."""


@pytest.mark.parametrize("dies_before_rename", [1, 2, 3, None])
def test_a_state_file_is_vouched_for_by_its_signature_at_every_instant_of_its_replacement(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dies_before_rename: int | None) -> None:
    """A state file replaces its predecessor in three renames (signature listing both, file, signature listing the
    new one alone); a writer killed before any of them leaves a file its signature vouches for. The rename of the
    file before its signature left, killed in between (CI met it), a new file under the old signature."""
    target = tmp_path / "search_gen_state-x.json"
    with atomic_local().open_output_stream(str(target)) as stream:
        stream.write(b"old")
    renames = 0
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        nonlocal renames
        renames += 1
        if renames == dies_before_rename:
            raise _Killed
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    stream = atomic_local().open_output_stream(str(target))
    stream.write(b"new")
    with contextlib.suppress(_Killed):
        stream.close()
    monkeypatch.undo()
    assert renames == (dies_before_rename or 3)
    assert target.read_bytes() == (b"old" if dies_before_rename in (1, 2) else b"new")
    assert trust.problem(target) is None
    assert len(trust.signature_path(target).read_text().split()) == (1 if dies_before_rename in (1, None) else 2)
    target.write_bytes(b"other")  # and the signature still vouches for nothing else
    assert trust.problem(target) == f"{target.name}'s signature is not this user's"
