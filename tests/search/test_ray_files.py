"""Ray's files in a study folder appear whole or not at all, even when the writer is killed mid-file."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pyarrow.fs as pafs

from search.ray_files import PARTIAL, atomic_local, clear_partials

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
        "experiment_state-1.json", "sub", "c.pkl", "d.txt"}
