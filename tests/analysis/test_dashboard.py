"""``python -m analysis.dashboard``: the real optuna-dashboard on a study's storage, and its bad input.

The study folder is written through ``results`` (as a sweep writes it) and its Optuna storage with Optuna's
own API: metric names and the user attributes a sweep sets on each trial. The server runs as a real
subprocess on a free loopback port; its JSON API and a headless Chromium page load are checked.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pytest
from PIL import Image

from analysis.dashboard import main
from cae.cli import run
from results import study_paths
from tests.analysis.browser import chromium
from tests.analysis.built_studies import trial, write_study

REPO = Path(__file__).resolve().parents[2]
STUDY = "dash"
METRICS = ["val_mse"]
ATTRS = ("architecture", "test_mse", "test_psnr", "test_ssim", "skill", "epochs", "train_seconds", "node")
DEADLINE = 120.0  # seconds for the server to answer: generous, the machine is shared


def make_dashboard_study(root: Path, name: str = STUDY) -> None:
    """Six finished trials in the study folder's own optuna.db, named and annotated as a sweep does."""
    rows = [trial(n, val_mse=0.01 / (n + 1), lr=10 ** (-4 + n / 3)) for n in range(6)]
    write_study(root, name, rows, storage="sqlite:///optuna.db")
    paths = study_paths(name, root)
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{paths.optuna_db}", direction="minimize")
    study.set_metric_names(METRICS)
    distributions = {
        "lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
        "latent_dim": optuna.distributions.CategoricalDistribution([16, 64, 128]),
    }
    for row in rows:
        attrs = {key: row[key] for key in ATTRS if key in row} | {"node": "127.0.0.1/abcd1234"}
        study.add_trial(optuna.trial.create_trial(
            params={"lr": row["lr"], "latent_dim": row["latent_dim"]}, distributions=distributions,
            value=row["val_mse"], user_attrs=attrs, intermediate_values={1: 2 * row["val_mse"], 2: row["val_mse"]},
        ))


@dataclass(frozen=True)
class Served:
    url: str  # the study page the CLI printed
    base: str  # scheme://host:port
    lines: list[str]  # what it printed before serving


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def wait_for(url: str) -> dict:
    """Poll until the server answers (it started listening before printing, but imports may be slow)."""
    started = time.monotonic()
    while True:
        try:
            return get_json(url)
        except OSError:
            if time.monotonic() - started > DEADLINE:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("results")
    make_dashboard_study(root)
    process = subprocess.Popen(
        [sys.executable, "-m", "analysis.dashboard", "--study", STUDY, "--root", str(root), "--port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = [process.stdout.readline().strip() for _ in range(3)]  # type: ignore[union-attr]
        found = re.search(r"(http://[^/]+)(/dashboard/studies/\d+)", lines[0])
        assert found, f"no URL printed: {lines} {process.poll() and process.stderr.read()}"  # type: ignore[union-attr]
        yield Served(found.group(0), found.group(1), lines)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_api_lists_the_study_with_its_metric_names_and_trial_attributes(served: Served) -> None:
    assert served.base.startswith("http://127.0.0.1:")  # loopback by default
    studies = wait_for(f"{served.base}/api/studies")["study_summaries"]
    assert [s["study_name"] for s in studies] == [STUDY]
    study_id = studies[0]["study_id"]
    assert served.url.endswith(f"/dashboard/studies/{study_id}")
    detail = get_json(f"{served.base}/api/studies/{study_id}")
    assert detail["objective_names"] == METRICS
    assert len(detail["trials"]) == 6
    keys = {a["key"] for t in detail["trials"] for a in t["user_attrs"]}
    assert set(ATTRS) <= keys


def test_a_study_without_tensorboard_logs_is_served_with_a_note(served: Served) -> None:
    assert served.lines[1].startswith(f"note: study '{STUDY}' has no TensorBoard logs")


def test_it_listens_on_loopback_only(served: Served) -> None:
    """The kernel's table of listening TCP sockets: the server's port is bound to 127.0.0.1 and nothing else."""
    port = int(served.base.rsplit(":", 1)[1])
    wait_for(f"{served.base}/api/studies")
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        pytest.skip("no /proc/net/tcp on this system")
    listening = [
        fields[1].split(":")[0]
        for table in tables if table.exists()
        for fields in (line.split() for line in table.read_text().splitlines()[1:])
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A"  # 0A: LISTEN
    ]
    assert listening == ["0100007F"]  # 127.0.0.1, little-endian hex


def test_chromium_draws_the_history_plot(browser: str, served: Served, tmp_path: Path) -> None:
    wait_for(f"{served.base}/api/studies")
    dom = chromium(browser, tmp_path / "profile-dom", "--virtual-time-budget=20000", "--dump-dom", served.url)
    assert 'class="main-svg"' in dom.stdout, f"no plotly figure in the page: {dom.stderr[-1500:]}"
    assert "History" in dom.stdout and "val_mse" in dom.stdout  # the history plot, its axis named by the metric
    shot = tmp_path / "dashboard.png"
    chromium(browser, tmp_path / "profile-shot", "--virtual-time-budget=20000", "--window-size=1400,1000",
             f"--screenshot={shot}", served.url)
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 10  # drawn, not blank


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run(main, argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err


def test_an_unknown_study_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["--study", "nope", "--root", str(tmp_path), "--port", "0"], capsys)
    one_line_error(code, err, "'nope' does not exist")
    assert out == "" and list(tmp_path.iterdir()) == []


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_dashboard_study(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run_cli(["--study", STUDY, "--root", str(tmp_path), "--port", str(port)], capsys)
    one_line_error(code, err, f"port {port}", "in use")
    assert out == ""


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_a_bad_port_is_one_line_and_exit_2(port: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["--study", STUDY, "--root", str(tmp_path), "--port", port], capsys)
    one_line_error(code, err, "--port")


def test_a_study_without_its_database_is_refused_and_none_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_study(tmp_path, STUDY, [trial(0, val_mse=0.01)], storage="sqlite:///optuna.db")
    code, _, err = run_cli(["--study", STUDY, "--root", str(tmp_path), "--port", "0"], capsys)
    one_line_error(code, err, "no Optuna database")
    assert not study_paths(STUDY, tmp_path).optuna_db.exists()


def test_a_keras_tuner_study_has_no_storage_to_serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_study(tmp_path, STUDY, [trial(0, val_mse=0.01)], engine="keras-tuner", storage=None)
    code, _, err = run_cli(["--study", STUDY, "--root", str(tmp_path), "--port", "0"], capsys)
    one_line_error(code, err, "keras-tuner", "analysis.report")
