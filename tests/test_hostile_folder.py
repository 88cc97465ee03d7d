"""A study folder is data: the hostile folder itself, built here (links to files outside it, FIFOs, a link to
/dev/zero, sparse files larger than any cap, a corrupt SQLite file), is read and written by ``results`` and the
commands on top of it without following a link out of the folder, without hanging, and with one line (exit 2)
where a command is involved. Every file outside the study is checked byte for byte afterwards.

The report's own writes are tested in ``tests/analysis/test_report.py``, the dashboard's in
``tests/analysis/test_dashboard.py``, sweep.log in ``tests/search/test_progress.py``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import results
from cae.errors import StudyError
from search.cli import main as search_main
from tests.analysis.built_studies import meta_for, realistic_rows, trial, write_study
from tests.conftest import in_process

REPO = Path(__file__).resolve().parents[1]
STUDY = "handed"
SOMEONE_ELSES = b"someone else's file\n"
HUGE = 4 * 2**30  # sparse: no disk used, larger than every cap
pytestmark = pytest.mark.timeout(60)  # a FIFO opened the old way would wait here for ever: fail instead


@pytest.fixture
def study(tmp_path: Path) -> results.StudyPaths:
    write_study(tmp_path / "results", STUDY, *realistic_rows())
    return results.study_paths(STUDY, tmp_path / "results")


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside every study, which a link in the handed folder points to."""
    path = tmp_path / "home" / "notes.txt"
    path.parent.mkdir()
    path.write_bytes(SOMEONE_ELSES)
    return path


def untouched(victim: Path) -> bool:
    return victim.read_bytes() == SOMEONE_ELSES and sorted(p.name for p in victim.parent.iterdir()) == [victim.name]


def one_line(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: "), proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


# --- writes --------------------------------------------------------------------------------------------------


def test_the_lock_holder_is_written_beside_a_link_never_through_it(study: results.StudyPaths, victim: Path) -> None:
    holder = study.folder / ".lock.holder"
    holder.symlink_to(victim)
    with results.StudyLock(study):
        assert not holder.is_symlink() and json.loads(holder.read_text())["pid"] == os.getpid()
        assert untouched(victim)
    assert untouched(victim) and not os.path.lexists(holder)


def test_a_lock_file_that_is_a_link_is_replaced_by_a_lock_of_its_own(
    study: results.StudyPaths, victim: Path
) -> None:
    study.lock.symlink_to(victim)
    with results.StudyLock(study):
        assert not study.lock.is_symlink() and study.lock.is_file()
    assert untouched(victim)


def test_resume_of_a_handed_study_writes_nothing_outside_it(study: results.StudyPaths, victim: Path) -> None:
    """`search resume` probes the lock of a study whose .lock exists: the holder it writes went through the link."""
    study.lock.touch()
    (study.folder / ".lock.holder").symlink_to(victim)
    proc = in_process(search_main, "resume", "--study", STUDY, "--root", str(study.root))
    assert proc.returncode == 2  # the hand-built study.json records no options to resume with
    assert untouched(victim)


def test_study_files_replace_a_link_and_refuse_a_linked_folder(study: results.StudyPaths, victim: Path) -> None:
    study.meta.unlink()
    study.meta.symlink_to(victim)
    results.write_meta(study, meta_for(STUDY))
    assert not study.meta.is_symlink() and results.read_meta(study)["name"] == STUDY
    (study.folder / "models").symlink_to(victim.parent)
    with pytest.raises(StudyError, match=r"models is a link \(to .*home\), and caesweep writes through no link"):
        results.write_atomic(study.models_dir / "t1.json", "{}", study.folder)
    assert untouched(victim)


def test_a_kept_model_is_copied_whole_replacing_a_link(study: results.StudyPaths, victim: Path, tmp_path: Path) -> None:
    saved = tmp_path / "scratch" / "model.keras"
    saved.parent.mkdir()
    saved.write_bytes(b"PK" + bytes(range(256)) * 400)
    target = study.model_path("t1")
    target.parent.mkdir()
    target.symlink_to(victim)
    results.copy_atomic(saved, target, study.folder)
    assert target.read_bytes() == saved.read_bytes() and not target.is_symlink()
    assert untouched(victim)
    assert sorted(p.name for p in target.parent.iterdir()) == ["t1.keras"]  # no temporary file left


LIMITED = """
import resource, sys
from pathlib import Path
import results
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))  # Python ignores SIGXFSZ: a longer write raises EFBIG
source, target, folder = map(Path, sys.argv[1:])
try:
    {call}
except OSError as exc:
    print(exc.errno)
"""


@pytest.mark.parametrize("call", [
    "results.copy_atomic(source, target, folder)",
    "results.write_files(target.parent, {target.name: source.read_bytes(), 'b.txt': 'small'}, folder)",
])
def test_a_full_disk_leaves_the_old_file_whole(study: results.StudyPaths, tmp_path: Path, call: str) -> None:
    """The file-size limit stands in for a full disk (a write past it fails, as one past the disk's end does): a
    kept model or a report cut short would be a partial file for good; instead the old one stays, whole."""
    saved = tmp_path / "model.keras"
    saved.write_bytes(os.urandom(200_000))
    target = study.model_path("t1")
    target.parent.mkdir()
    target.write_bytes(b"the previous model")
    (target.parent / "b.txt").write_bytes(b"previous b")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(LIMITED).format(call=call), str(saved),
                           str(target), str(study.folder)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "27", proc.stderr  # EFBIG
    assert target.read_bytes() == b"the previous model" and (target.parent / "b.txt").read_bytes() == b"previous b"
    assert sorted(p.name for p in target.parent.iterdir()) == ["b.txt", "t1.keras"]


# --- reads ---------------------------------------------------------------------------------------------------


def _special(path: Path, kind: str, victim: Path) -> None:
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "huge":
        with open(path, "wb") as stream:
            stream.truncate(HUGE)
    elif kind == "link-out":
        path.symlink_to(victim)


CASES = [
    ("study.json", "fifo", "is a FIFO, not a regular file"),
    ("study.json", "dev-zero", "study.json is a link (to /dev/zero)"),
    ("study.json", "huge", "is larger than 16,777,216 bytes (4,294,967,296)"),
    ("trials.csv", "fifo", "trials.csv is a FIFO, not a regular file"),
    ("trials.csv", "dev-zero", "trials.csv is a link (to /dev/zero)"),
    ("trials.csv", "huge", "trials.csv is larger than 268,435,456 bytes"),
    ("history.csv", "link-out", "history.csv is a link (to "),
]


@pytest.mark.parametrize("name, kind, message", CASES)
def test_a_study_file_that_is_not_a_regular_file_is_refused_unread(
    study: results.StudyPaths, victim: Path, name: str, kind: str, message: str
) -> None:
    _special(study.folder / name, kind, victim)
    with pytest.raises(StudyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        results.load_study(study)


def test_search_list_lists_the_damaged_studies_and_the_others(tmp_path: Path, victim: Path) -> None:
    root = tmp_path / "results"
    write_study(root, "good", [trial(0, val_mse=0.0123)])
    for name, (file, kind, _) in zip(("a-fifo", "b-zero", "c-huge", "d-meta"), CASES[3:6] + CASES[:1], strict=True):
        write_study(root, name, [trial(0, val_mse=0.5)])
        _special(root / name / file, kind, victim)
    proc = in_process(search_main, "list", "--root", str(root))
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert sorted(lines) == ["a-fifo", "b-zero", "c-huge", "d-meta", "good"]
    assert "0.0123" in lines["good"]
    for name in ("a-fifo", "b-zero", "c-huge", "d-meta"):
        assert "unreadable" in lines[name], lines[name]


def test_a_database_that_is_a_link_is_not_opened(study: results.StudyPaths, tmp_path: Path) -> None:
    """SQLite follows links: a resume would write its trials into the file the link points to."""
    elsewhere = tmp_path / "elsewhere.db"
    elsewhere.write_bytes(b"")
    for suffix in ("", "-wal"):
        link = Path(f"{study.optuna_db}{suffix}")
        link.symlink_to(elsewhere)
        with pytest.raises(StudyError, match=f"{link.name} is a link, so the study's Optuna storage is not opened"):
            results.storage_url({"storage": "sqlite:///optuna.db"}, study)
        link.unlink()
    assert results.storage_url({"storage": "sqlite:///optuna.db"}, study) == study.default_storage_url()


def test_a_corrupt_database_is_one_line_naming_it(tmp_path: Path) -> None:
    """`search resume` of a study whose optuna.db is not a database (SQLAlchemy's traceback, exit 1, before)."""
    root = tmp_path / "results"
    options = {"study": STUDY, "space": "quick", "root": str(root)}
    write_study(root, STUDY, [trial(0, val_mse=0.1)], storage="sqlite:///optuna.db", options=options, status="done")
    database = results.study_paths(STUDY, root).optuna_db
    database.write_bytes(b"SQLite format 3\x00" + b"\x13" * 5000)
    proc = in_process(search_main, "resume", "--study", STUDY, "--root", str(root))
    one_line(proc, f"{database} is not a readable Optuna database (file is not a database)")


# --- who holds a study ---------------------------------------------------------------------------------------


def test_a_study_is_in_use_only_while_its_lock_is_held(study: results.StudyPaths) -> None:
    """study.json may say running after a driver could not record its end (a full disk, SIGKILL): the lock says
    whether anyone runs it."""
    results.write_meta(study, meta_for(STUDY, status="running"))
    assert results.lock_holder(study) is None  # never locked
    with results.StudyLock(study):
        assert results.lock_holder(study) == f"pid {os.getpid()} on {socket.gethostname()} ({' '.join(sys.argv)})"
        with pytest.raises(StudyError, match="is in use by pid"):
            results.refuse_if_locked(study)
    assert results.lock_holder(study) is None
    results.refuse_if_locked(study)
    assert not os.path.lexists(study.folder / ".lock.holder")


# --- the writers inside a run: Ray's result files, TensorBoard, a kept trial's final record ---------------------


def test_a_trials_result_and_params_files_replace_links_never_write_through_them(tmp_path: Path, victim: Path) -> None:
    from types import SimpleNamespace

    from search.ray_files import TrialFiles

    folder = tmp_path / "study" / "ray" / "run-1" / "trial_a"
    folder.mkdir(parents=True)
    before = victim.read_bytes()
    (folder / "result.json").symlink_to(victim)
    (folder / "params.json").symlink_to(victim)
    class Trial:  # what TrialFiles reads of Ray's Trial: its storage path and config (hashable, as Ray's is)
        storage = SimpleNamespace(trial_fs_path=str(folder))
        config = {"lr": 0.1}

    trial = Trial()
    files = TrialFiles()
    files.log_trial_result(1, trial, {"epoch": 1, "val_mse": 0.5})
    files.log_trial_result(2, trial, {"epoch": 2, "val_mse": 0.4})
    assert victim.read_bytes() == before
    assert not (folder / "result.json").is_symlink() and not (folder / "params.json").is_symlink()
    assert [json.loads(line)["epoch"] for line in (folder / "result.json").read_text().splitlines()] == [1, 2]
    assert json.loads((folder / "params.json").read_text()) == {"lr": 0.1}
    assert not (folder / "params.pkl").exists()  # no pickle in a study that caesweep did not sign


def test_a_tensorboard_event_file_that_is_a_link_is_replaced(tmp_path: Path, victim: Path) -> None:
    from search.tensorboard import _event, _Run

    run_folder = tmp_path / "study" / "tensorboard" / "t1" / "train"
    run_folder.mkdir(parents=True)
    run = _Run(run_folder, tmp_path / "study")
    run.path.symlink_to(victim)
    before = victim.read_bytes()
    run.append([_event(1, 0.0)])
    assert victim.read_bytes() == before and run.path.is_file() and not run.path.is_symlink()


def test_a_trials_final_record_that_is_a_fifo_is_no_record(tmp_path: Path) -> None:
    """A restarted trial looks for its final record: a FIFO there (a handed folder) must not hang it."""
    from search.trial import finished_record

    models = tmp_path / "study" / "models"
    models.mkdir(parents=True)
    os.mkfifo(models / "t1.json")
    assert finished_record(str(models), "t1") is None
    (models / "t2.json").write_text(json.dumps({"final": True, "epoch": 1}))
    assert finished_record(str(models), "t2") == {"final": True, "epoch": 1}


def test_a_running_study_that_nobody_runs_is_listed_as_interrupted(tmp_path: Path) -> None:
    """A driver killed before it could say so (SIGKILL, a full disk) leaves study.json saying running; search list
    tells it as it is: nobody holds its lock, so it is interrupted."""
    write_study(tmp_path, "gone", [trial(0)], status="running")
    proc = in_process(search_main, "list", "--root", str(tmp_path), "-f", "json")
    (row,) = json.loads(proc.stdout)["studies"]
    assert row["status"] == "interrupted"
