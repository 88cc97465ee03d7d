"""``python -m benchmarks``: user errors are one line on stderr and exit code 2; nothing is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import tabular
from benchmarks.cli import main
from cae.cli import run
from tests.search.conftest import REPO


def errors(capsys: pytest.CaptureFixture, *argv: str) -> str:
    code = run(main, list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_an_unknown_benchmark_is_one_line_naming_the_known_ones(capsys: pytest.CaptureFixture) -> None:
    err = errors(capsys, "run", "nope")
    assert "unknown benchmark 'nope'" in err and "seed-colorization" in err and "engines" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("run", "engines", "--budget", "3"), "--budget 3 is too small for engines: one trial needs at least 18"),
        (("run", "seed-colorization", "--budget", "0"), "--budget 0 is too small for seed-colorization"),
        (("run", "overhead", "--budget", "1"), "--budget 1 is too small for overhead"),
        (("run", "engines", "--seeds", "0"), "--seeds 0 must be at least 1"),
        (("run", "overhead", "--table", "x.csv"), "does not take --table"),
        (("run", "seed-architectures", "--limit", "2"), "--limit 2 must be at least 3"),
        (("run", "engines", "--data", "nowhere"), "unknown dataset 'nowhere'"),
        (("run", "scale", "--trials", "0"), "--trials 0 must be at least 1"),
        (("run", "scale", "--workers", "0"), "--workers 0 must be at least 1"),
        (("run", "engines", "--trials", "5"), "does not take --trials"),
        (("run", "engines", "--workers", "0"), "--workers 0 must be at least 1"),
        (("run", "engines", "--time-scale", "0"), "--time-scale 0.0 must be a positive number"),
        (("run", "engines", "--time-scale", "-0.5"), "--time-scale -0.5 must be a positive number"),
        (("run", "engines", "--time-scale", "nan"), "--time-scale nan must be a positive number"),
        (("run", "scale", "--time-scale", "0.1"), "does not take --time-scale"),
        (("run", "seed-architectures", "--profile", "gpu"), "--profile gpu: benchmark seed-architectures has the "
                                                            "profiles cpu, published"),
        (("run", "engines", "--profile", "published"), "does not take --profile"),
        (("build-table", "--repeats", "0"), "--repeats 0 must be an integer >= 1"),
        (("build-table", "--repeat-configs", "500"), "--repeat-configs 500 is more than the grid's 36"),
        (("build-table", "--split-seed", "-1"), "--split-seed -1 must be an integer >= 0"),
        (("build-table", "--max-configs", "0"), "--max-configs 0 must be at least 1"),
        (("build-table", "--space", "missing.yaml"), "--space missing.yaml does not exist"),
        (("frobnicate",), "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture, tmp_path: Path, argv: tuple[str, ...], message: str
) -> None:
    root = ["--root", str(tmp_path)] if argv[0] == "run" else []
    assert message in errors(capsys, *argv, *root)
    assert not (tmp_path / "benchmarks").exists()


def test_a_missing_table_names_the_command_that_builds_it(
    capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tabular, "DATA_DIR", tmp_path / "data")  # a CIFAR-10 table built here must not run
    table = tmp_path / "nope.csv"
    err = errors(capsys, "run", "engines", "--table", str(table), "--root", str(tmp_path))
    assert f"tabular benchmark file {table} is missing" in err
    assert f"python -m benchmarks build-table --data embedded --out {table}" in err
    err = errors(capsys, "run", "engines", "--data", "cifar10", "--root", str(tmp_path))
    assert f"{tmp_path / 'data' / 'cifar10-16px.csv'} is missing" in err and "build-table --data cifar10" in err


def test_list_runs_as_a_module() -> None:
    # The one real `python -m benchmarks` of this file (the error cases run in this process): it proves that the
    # module form runs main through cae.cli.run with the command line's arguments.
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "list"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in ("seed-architectures", "seed-colorization", "engines", "overhead"):
        assert f"{name} (" in proc.stdout
