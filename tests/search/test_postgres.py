"""A study in a real PostgreSQL server (``--storage postgresql://...``): run, extend and the dashboard, with
the password in no file of the study; and bad storage input refused before anything.

One sweep is shared by the module (``flow``): the password is given only in the URL of ``run``; every later
command gets it from PGPASSWORD, as a user would after the warning ``run`` prints. ``run`` and ``resume`` run the
CLI in this process (a Python start, ``ray.init`` and Ray's shutdown less: ~10 s each), with real training, since
the leak check reads every file a real study has (models, TensorBoard runs, Ray's pickles); their environment is
set as a user's would be (PGPASSWORD and PGPASSFILE), and ``run`` starts the Ray that both use, as the CLI's does:
after it put the password into PGPASSWORD, so that its trial workers inherit it. The checks of what a child
process's environment gives (the dashboard, a resume without the password) stay subprocesses.

A SIGKILL of the driver and ``resume``, ``search list`` and ``analysis.report`` on a PostgreSQL study run in the
cluster guide's test (``test_cluster_guide.py``), on a two-node cluster; each Ray start costs seconds, so they are
not repeated here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
import pytest

from cae.cli import run as run_cli
from search.cli import main, prepare
from tests.analysis.test_dashboard import wait_for
from tests.conftest import in_process, read_study_table
from tests.search.conftest import REPO, TINY_SPACE, search_cli, sweep_env
from tests.search.postgres import PASSWORD, Server
from tests.search.test_cli_errors import assert_user_error, snapshot

pytestmark = pytest.mark.slow
STUDY = "pg1"


@dataclass
class Flow:
    server: Server
    root: Path
    run_log: str
    ran: subprocess.CompletedProcess
    after_resume: pd.DataFrame
    extended: subprocess.CompletedProcess
    after_extend: pd.DataFrame
    env: dict[str, str | None]  # what the commands after `run` were given: the password in PGPASSWORD

    @property
    def folder(self) -> Path:
        return self.root / STUDY


def no_password_but_the_urls(tmp: Path) -> dict[str, str | None]:
    """No PGPASSWORD and a ~/.pgpass that does not exist: only a URL can give the password."""
    return {"PGPASSWORD": None, "PGPASSFILE": str(tmp / "no-such-pgpass")}


def set_environment(patch: pytest.MonkeyPatch, changes: dict[str, str | None]) -> None:
    """Set (None: remove) environment variables; undone with ``patch``, including what the commands run in
    between set (``run`` puts the password into PGPASSWORD)."""
    for key, value in changes.items():
        patch.setenv(key, value or "")  # recorded as it was before, so the undo restores it whatever happens
        if value is None:
            patch.delenv(key)


@pytest.fixture(scope="module")
def flow(postgres: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    import ray

    tmp = tmp_path_factory.mktemp("pg")
    space = tmp / "tiny.yaml"
    space.write_text(TINY_SPACE)
    root = tmp / "results"
    common = ("--root", str(root), "--study", STUDY)
    if ray.is_initialized():
        # The test process's private Ray (another module's sweeps, when several share this process) started
        # without the password in its environment; the one ``run`` starts has it, as the CLI's has.
        ray.shutdown()
    with pytest.MonkeyPatch.context() as patch:
        ray_env = {key: value for key, value in sweep_env().items() if key.startswith("RAY_")}
        set_environment(patch, {**ray_env, "RAY_ADDRESS": None, **no_password_but_the_urls(tmp)})
        try:
            ran = in_process(
                main, "run", *common, "--space", str(space), "--samples", "3", "--scheduler", "none",
                "--max-epochs", "2", "--limit", "48", "--concurrency", "1", "--storage", postgres.url(password=True),
            )
            after_run = read_study_table(root / STUDY / "trials.csv")
            env = {**no_password_but_the_urls(tmp), "PGPASSWORD": PASSWORD}
            set_environment(patch, env)
            extended = in_process(main, "resume", *common, "--samples", "4", "--storage", postgres.url())
        finally:
            ray.shutdown()  # the Ray ``run`` started: the password leaves the test process with the undo
    yield Flow(postgres, root, ran.stdout + ran.stderr, ran, after_run, extended,
               read_study_table(root / STUDY / "trials.csv"), env)


def optuna_trials(flow: Flow) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=STUDY, storage=flow.server.url(password=True))
    return [t for t in study.get_trials() if "duplicate_of" not in t.user_attrs]


def test_run_warns_once_that_resume_needs_the_password(flow: Flow) -> None:
    warnings = [line for line in flow.run_log.splitlines() if line.startswith("warning: the password")]
    assert len(warnings) == 1 and "PGPASSWORD" in warnings[0] and PASSWORD not in flow.run_log


def test_run_ends_with_exactly_the_requested_trials(flow: Flow) -> None:
    assert flow.ran.returncode == 0, flow.run_log[-3000:]
    assert len(flow.after_resume) == 3 and (flow.after_resume["status"] == "COMPLETE").all()
    assert flow.after_resume["trial_id"].is_unique


def test_extend_adds_trials_in_the_same_postgres_study(flow: Flow) -> None:
    assert flow.extended.returncode == 0, flow.extended.stdout[-3000:] + flow.extended.stderr[-3000:]
    assert len(flow.after_extend) == 4 and (flow.after_extend["status"] == "COMPLETE").all()
    kept = flow.after_resume.set_index("trial_id")["val_mse"]
    assert flow.after_extend.set_index("trial_id")["val_mse"].loc[kept.index].tolist() == kept.tolist()
    trials = optuna_trials(flow)  # the optuna CLI and dashboards read the same server
    assert len(trials) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


def test_study_json_records_the_url_without_the_password(flow: Flow) -> None:
    meta = json.loads((flow.folder / "study.json").read_text())
    assert meta["storage"] == meta["options"]["storage"] == flow.server.url(password=False)


def test_the_password_is_in_no_file_of_the_study(flow: Flow) -> None:
    files = [p for p in flow.folder.rglob("*") if p.is_file()]
    assert any(p.suffix == ".pkl" for p in files)  # Ray's pickled experiment state (the searcher's too) is read
    leaks = [str(p.relative_to(flow.folder)) for p in files if PASSWORD.encode() in p.read_bytes()]
    assert leaks == []


def test_the_dashboard_serves_the_storage_of_study_json_only_when_named_again(flow: Flow) -> None:
    """study.json names the PostgreSQL server: the dashboard connects to it only when the user names it too."""
    command = [sys.executable, "-m", "analysis.dashboard", "--study", STUDY, "--root", str(flow.root), "--port", "0"]
    refused = subprocess.run(command, cwd=REPO, env=sweep_env(flow.env), capture_output=True, text=True, timeout=120)
    assert_user_error(refused, "records the Optuna storage", f"--storage {flow.server.url(password=False)}")
    proc = subprocess.Popen(
        [*command, "--storage", flow.server.url(password=False)],
        cwd=REPO, env=sweep_env(flow.env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        found = re.search(r"(http://[^/]+)/dashboard/studies/\d+\?token=([\w-]+)", line)
        assert found, line + (proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
        # Polled: the URL is printed as the server starts, which a loaded machine may not have finished yet.
        studies = wait_for(f"{found.group(1)}/api/studies", found.group(2))["study_summaries"]
        assert STUDY in [s["study_name"] for s in studies]  # the server's database may hold other studies too
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_resume_without_the_password_is_one_line_naming_pgpassword(flow: Flow, tmp_path: Path) -> None:
    before = snapshot(flow.folder)
    proc = search_cli("resume", "--study", STUDY, "--root", str(flow.root), "--storage", flow.server.url(),
                      env=no_password_but_the_urls(tmp_path))
    assert_user_error(proc, "PGPASSWORD", "~/.pgpass")
    assert snapshot(flow.folder) == before


def test_the_folder_alone_never_chooses_the_server_its_credentials_go_to(flow: Flow) -> None:
    """study.json names the PostgreSQL server; resume (and confirm) use it only when the user names it again."""
    before = snapshot(flow.folder)
    for command in (("resume",), ("confirm", "--top", "1", "--repeats", "1")):
        proc = in_process(main, *command, "--study", STUDY, "--root", str(flow.root))
        assert_user_error(proc, "records the Optuna storage", f"pass it yourself: --storage {flow.server.url()}")
    assert snapshot(flow.folder) == before


def test_a_second_folder_cannot_take_over_the_same_optuna_study(flow: Flow, tmp_path: Path) -> None:
    """Each study folder has its own Optuna study: run refuses a name the shared storage already holds, and resume
    refuses an Optuna study marked as another folder's."""
    other = tmp_path / "other"
    proc = in_process(main, "run", "--root", str(other), "--study", STUDY, "--space", "quick", "--storage",
                      flow.server.url(password=True))
    assert_user_error(proc, f"already holds an Optuna study named {STUDY!r}", "pick another --study name")
    assert not other.exists()
    copy = other / STUDY
    shutil.copytree(flow.folder, copy)
    meta = json.loads((copy / "study.json").read_text())
    meta["study_id"] = "0" * 32  # a folder that claims the same Optuna study under another identity
    (copy / "study.json").write_text(json.dumps(meta))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PGPASSWORD", PASSWORD)
        proc = in_process(main, "resume", "--study", STUDY, "--root", str(other), "--storage", flow.server.url())
    assert_user_error(proc, "belongs to another study folder", "resume that study from its own folder")


# --- bad storage input: one line, exit 2, no study folder --------------------------------------------------


def check_only(argv: list[str]) -> int:
    """``python -m search`` as far as its checks go (everything before the study folder is created)."""
    return run_cli(lambda args: prepare(args) and 0, argv)


@pytest.fixture
def no_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key, value in no_password_but_the_urls(tmp_path).items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (lambda s: s.url(password=True, database="nosuchdb"), ["nosuchdb", "does not exist", "createdb"]),
        (lambda s: s.url(password=True).replace(PASSWORD, "wrong-pass"), ["password", "PGPASSWORD", "~/.pgpass"]),
        (lambda s: s.url(password=False), ["no password supplied", "PGPASSWORD"]),
        (lambda s: s.url(password=True).replace(f":{s.port}/", f":{s.port + 1}/"), ["no database server answers"]),
    ],
    ids=["missing-database", "wrong-password", "no-password", "nothing-listening"],
)
def test_bad_postgres_input_is_one_line_and_nothing_is_written(
    postgres: Server, url, words: list[str], tmp_path: Path, tiny_space: Path, no_password: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "root"
    code = check_only(["run", "--space", str(tiny_space), "--study", "bad", "--root", str(root), "--storage",
                       url(postgres)])
    out, err = capsys.readouterr()
    assert_user_error(subprocess.CompletedProcess([], code, out, err), *words)
    assert PASSWORD not in out + err and "wrong-pass" not in err
    assert not root.exists()
    assert "PGPASSWORD" not in os.environ  # a refused URL's password is not kept either


def test_postgres_without_its_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_space: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what `import psycopg` meets where it is not installed
    root = tmp_path / "root"
    code = check_only(["run", "--space", str(tiny_space), "--study", "bad", "--root", str(root), "--storage",
                       f"postgresql://ann:{PASSWORD}@127.0.0.1:9/db"])
    out, err = capsys.readouterr()
    assert_user_error(subprocess.CompletedProcess([], code, out, err), "pip install 'caesweep[postgres]'")
    assert PASSWORD not in err and not root.exists()
