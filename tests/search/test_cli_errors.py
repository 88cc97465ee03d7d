"""Bad input to ``python -m search``: one line on stderr, exit code 2, no traceback, nothing written.

The CLI runs in this process (:func:`as_python_m`), as ``python -m search`` would run it, without the second
or so that a fresh interpreter's start and imports cost each case; one case
(:func:`test_resume_of_unknown_study`) runs the real ``python -m search``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.conftest import in_process
from tests.search.conftest import REPO, search_cli
from tests.spaces_for_tests import TUNED

Cli = Callable[..., subprocess.CompletedProcess]

# What Python ignores by default (no -W option): every other warning a ``python -m`` process prints.
IGNORED_BY_PYTHON = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def as_python_m(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, main: Callable[[Sequence[str] | None], int],
    *argv: str,
) -> subprocess.CompletedProcess:
    """A CLI's ``main`` run in this process (:func:`tests.conftest.in_process`), with what its ``python -m``
    process would also have printed, and pytest takes instead, added to the output: writes that bypass
    ``sys.stdout``/``sys.stderr`` (to the file descriptors, from ``capfd``), warnings (pytest records them) and
    log records of WARNING and above (pytest's handlers take them from Python's last resort, which prints them).
    Not seen: a logger with a handler of its own writes where ``sys.stderr`` was when the handler was made."""
    capfd.readouterr()
    seen = len(caplog.records)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for category in IGNORED_BY_PYTHON:
            warnings.simplefilter("ignore", category)
        proc = in_process(main, *argv)
    leaked = capfd.readouterr()
    extra = [warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught]
    extra += [f"{r.levelname}:{r.name}:{r.getMessage()}\n" for r in caplog.records[seen:]
              if r.levelno >= logging.WARNING]
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, leaked.out + proc.stdout, leaked.err + "".join(extra) + proc.stderr
    )


@pytest.fixture
def cli(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Cli:
    """``python -m search ARGS`` in this process, from the folder :func:`search_cli` runs it in. None of its
    cases starts Ray: each is refused first."""
    from search.cli import main  # here: tests/test_train_cli.py imports this module for as_python_m alone

    monkeypatch.chdir(REPO)
    return lambda *argv: as_python_m(capfd, caplog, main, *argv)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_user_error(proc, *words: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for word in words:
        assert word in lines[0], lines[0]


BAD_SPACE = "samples: 2\nfixed: {image_size: 16}\nparams:\n  latent_dim: {low: 64, high: 8}\n"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--sampler", "magic"], ["sampler", "tpe"]),
        (["--engine", "spark"], ["engine", "keras-tuner"]),
        (["--scheduler", "pbt"], ["scheduler", "asha"]),
        (["--scheduler", "hyperband", "--sampler", "grid"], ["--scheduler hyperband", "--sampler grid", "asha"]),
        (["--scheduler", "hyperband", "--engine", "keras-tuner"], ["Ray engine", "--kt-tuner hyperband"]),
        (["--scheduler", "hyperband", "--max-epochs", "2"], ["max_epochs 2", "--max-epochs 3", "asha"]),
        (["--gpus-per-trial", "1.5"], ["--gpus-per-trial", "0.25"]),
        (["--gpus-per-trial", "-1"], ["--gpus-per-trial"]),
        (["--objectives", "val_mse,beauty"], ["beauty"]),
        (["--objectives", "val_mse,params", "--sampler", "cmaes"], ["nsga2"]),
        (["--objectives", "val_colorfulness"], ["invented colour", "val_mse,val_colorfulness"]),
        (["--objectives", "val_mse,val_colorfulness", "--space", "architecture", "--task", "reconstruct-gray"],
         ["reconstruct-gray", "no colour"]),
        (["--samples", "0"], ["--samples"]),
        (["--startup-trials", "0"], ["--startup-trials 0", ">= 1"]),
        (["--sampler", "random", "--startup-trials", "3"], ["--startup-trials", "tpe, cmaes, gp", "random"]),
        (["--space", "no-such-space"], ["no-such-space", "quick"]),
        (["--study", "../escape"], ["study name"]),
        (["--study", "a/b"], ["study name"]),
        (["--space", "architecture", "--task", "paint"], ["paint", "colorize-yuv"]),
        (["--task", "denoise"], ["quick", "searches the task itself", "drop --task"]),  # quick sweeps the task
        (["--data", "imagenet"], ["imagenet"]),
        (["--data", "cifar10:/nonexistent/cifar"], ["/nonexistent/cifar"]),
        (["--precision", "float8"], ["--precision", "mixed_bfloat16"]),
        (["--precision", "mixed_float16"], ["mixed_float16", "--gpus-per-trial", "mixed_bfloat16"]),
    ],
)
def test_run_refuses_bad_options(cli: Cli, tmp_path: Path, args: list[str], words: list[str]) -> None:
    proc = cli("run", "--root", str(tmp_path / "root"), *args)
    assert_user_error(proc, *words)
    assert not (tmp_path / "root").exists() or not any((tmp_path / "root").iterdir())


def test_invalid_space_file_names_the_entry(cli: Cli, tmp_path: Path) -> None:
    space = tmp_path / "bad.yaml"
    space.write_text(BAD_SPACE)
    proc = cli("run", "--space", str(space), "--root", str(tmp_path / "root"))
    assert_user_error(proc, "latent_dim", "low")
    assert not (tmp_path / "root").exists()


def test_existing_study_is_never_overwritten(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "study.json").write_text(json.dumps({"name": "taken", "status": "done"}))
    (folder / "trials.csv").write_text("trial_id,number,status\nabc,0,COMPLETE\n")
    before = snapshot(tmp_path)
    proc = cli("run", "--study", "taken", "--root", str(tmp_path))
    assert_user_error(proc, "already exists", "resume")
    assert snapshot(tmp_path) == before


def test_resume_of_unknown_study(tmp_path: Path) -> None:
    # The one real `python -m search` of this file: it proves that the module form itself turns a user error
    # into one line and exit code 2 (search/__main__.py: cae.cli.run), which every other case here takes as given.
    proc = search_cli("resume", "--study", "ghost", "--root", str(tmp_path))
    assert_user_error(proc, "ghost", "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_root_is_detected_before_trials(cli: Cli, tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    proc = cli("run", "--root", str(blocked / "sub"))
    assert_user_error(proc, "not writable")


def test_list_on_empty_root(cli: Cli, tmp_path: Path) -> None:
    proc = cli("list", "--root", str(tmp_path))
    assert proc.returncode == 0 and "no studies" in proc.stdout


def test_second_writer_is_refused_by_the_lock(cli: Cli, tmp_path: Path) -> None:
    import sys

    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "study.json").write_text(json.dumps({"name": "busy", "options": {"study": "busy"}, "samples": 2}))
    # The holder must be another process (the lock is per process); the refused writer may be this one.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, results; p = results.study_paths('busy', sys.argv[1])\n"
         "with results.StudyLock(p):\n    print('held', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(tmp_path)
        proc = cli("resume", "--study", "busy", "--root", str(tmp_path))
        assert_user_error(proc, "in use by", f"pid {holder.pid}")
        assert snapshot(tmp_path) == before
    finally:
        holder.kill()
        holder.wait()


def test_corrupt_study_metadata_is_reported_not_trusted(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "study.json").write_text('{"name": "broken", "opt')  # cut off mid-write
    before = snapshot(tmp_path)
    proc = cli("resume", "--study", "broken", "--root", str(tmp_path))
    assert_user_error(proc, "corrupt")
    assert snapshot(tmp_path) == before


def test_torn_result_lines_are_dropped(tmp_path: Path) -> None:
    from search.records import read_result_lines

    path = tmp_path / "result.json"
    path.write_text('{"epoch": 1, "val_mse": 0.5}\n{"epoch": 2, "val_mse": 0.4}\n{"epoch": 3, "val_')
    assert read_result_lines(path) == [{"epoch": 1, "val_mse": 0.5}, {"epoch": 2, "val_mse": 0.4}]


def test_a_torn_params_file_falls_back_to_optunas_params(tmp_path: Path) -> None:
    """A driver killed while Ray wrote a trial's params.json (seen after SIGKILL at the first epoch)."""
    from search.records import read_params

    path = tmp_path / "params.json"
    optuna_info = {"params": {"lr": 0.001, "filters_1": 16}}
    for torn in ("", '{"lr": 0.0', "[1, 2]"):
        path.write_text(torn)
        assert read_params(path, optuna_info) == {"lr": 0.001, "filters_1": 16}
    path.write_text('{"lr": 0.002}')
    assert read_params(path, optuna_info) == {"lr": 0.002}
    assert read_params(tmp_path / "missing.json", {}) == {}


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs (a full disk) needs root")
def test_full_disk_is_detected_before_trials(cli: Cli, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(disk)], check=True)
    try:
        proc = cli("run", "--root", str(disk / "results"), "--study", "full")
        assert_user_error(proc, "No space left", "--root")
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--space", TUNED, "--sampler", "grid"], ["--sampler grid needs a finite space", "'lr'"]),  # continuous lr
        (["--storage", "postgresql+pg8000://ann:hunter2@127.0.0.1:9/db"], ["driver is not installed", "pg8000"]),
        (["--storage", "sqlite:////nonexistent/folder/optuna.db"], ["/nonexistent/folder", "does not exist"]),
        (["--storage", "not a url"], ["not a database URL"]),
        (["--address", "127.0.0.1:9"], ["--address 127.0.0.1:9", "nothing answers"]),
        (["--split-seed", "-1"], ["--split-seed -1"]),
    ],
)
def test_what_can_be_checked_is_checked_before_the_study_exists(
    cli: Cli, tmp_path: Path, args: list[str], words: list[str]
) -> None:
    proc = cli("run", "--study", "early", "--root", str(tmp_path / "root"), "--limit", "16", *args)
    assert_user_error(proc, *words)
    assert "hunter2" not in proc.stderr  # a password is never printed
    assert not (tmp_path / "root" / "early").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--study", "ghost"], ["ghost", "does not exist"]),
        (["--study", "ghost", "--top", "0"], ["--top 0"]),
        (["--study", "ghost", "--repeats", "0"], ["--repeats 0"]),
    ],
)
def test_confirm_refuses_bad_input(cli: Cli, tmp_path: Path, args: list[str], words: list[str]) -> None:
    proc = cli("confirm", "--root", str(tmp_path), *args)
    assert_user_error(proc, *words)
    assert list(tmp_path.iterdir()) == []
