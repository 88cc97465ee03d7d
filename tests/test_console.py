"""One command, ``caesweep``: each of its commands is the ``python -m`` tool of the same name with the same options,
and ``caesweep list -f json|csv`` gives the studies to programs (as Optuna's CLI does)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from caesweep.cli import COMMANDS, entry, main
from results import COMPLETE, FAILED
from tests.analysis.built_studies import trial, write_study
from tests.conftest import in_process

REPO = Path(__file__).resolve().parents[1]


def test_every_command_is_a_modules_main() -> None:
    for command, (module, _, _) in COMMANDS.items():
        if command == "apply" and not (REPO / "cae" / "apply.py").exists():
            continue  # registered with the tool that brings it
        assert callable(entry(command)), (command, module)


def test_an_unknown_command_is_one_line_and_the_usage_lists_every_command(capsys: pytest.CaptureFixture) -> None:
    assert main(["sweep"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: caesweep has no command 'sweep'; choose from run, resume,") and err.count("\n") == 1
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS)


def test_the_console_script_is_installed_and_runs_the_search_cli(tmp_path: Path) -> None:
    script = shutil.which("caesweep", path=str(Path(sys.executable).parent))
    assert script is not None, "make install puts the caesweep script beside the venv's python"
    proc = subprocess.run([script, "list", "--root", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "no studies under" in proc.stdout
    proc = subprocess.run([script, "run", "--sampler", "magic"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "magic" in proc.stderr


def test_list_as_json_and_csv(tmp_path: Path) -> None:
    """The first objective, its direction and best value for each study, with its counts per status."""
    from search.cli import main as search_main

    root = tmp_path / "results"
    write_study(root, "listed", [trial(0, COMPLETE, val_mse=0.02), trial(1, COMPLETE, val_mse=0.01),
                                 trial(2, FAILED, error="boom")])
    table = in_process(search_main, "list", "--root", str(root))
    assert table.returncode == 0 and "listed" in table.stdout
    listed = json.loads(in_process(search_main, "list", "--root", str(root), "--format", "json").stdout)
    (row,) = [r for r in listed["studies"] if r["study"] == "listed"]
    assert set(row) == {"study", "status", "engine", "trials", "counts", "metric", "mode", "best"}
    assert row["metric"] == "val_mse" and row["mode"] == "min" and row["best"] == 0.01
    assert row["trials"] == 3 == sum(row["counts"].values()) and row["counts"]["failed"] == 1
    csv = in_process(search_main, "list", "--root", str(root), "-f", "csv").stdout
    frame = pd.read_csv(pd.io.common.StringIO(csv))
    assert frame.loc[frame["study"] == "listed", "best"].iloc[0] == pytest.approx(row["best"])
    assert in_process(search_main, "list", "--root", str(root), "-f", "xml").returncode == 2
