"""``python -m analysis.dashboard``: the real optuna-dashboard on a study's storage, and its bad input.

The study folder is written through ``results`` (as a sweep writes it) and its Optuna storage with Optuna's
own API: metric names and the user attributes a sweep sets on each trial. The server runs as a real
subprocess on a free loopback port; its JSON API and a headless Chromium page load are checked, and so is its
guard: real HTTP requests (``http.client``) with a foreign ``Host`` (DNS rebinding), a foreign ``Origin``, no
token, and writes to a read-only dashboard.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pytest
from PIL import Image

from analysis.dashboard import Guard, main, served_names
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
    with warnings.catch_warnings():  # experimental in Optuna, as caesweep's own call says (search.searcher)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
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
    url: str  # the study page the CLI printed, with its token
    base: str  # scheme://host:port
    lines: list[str]  # what it printed before serving
    token: str  # this run's token (the printed URL's)
    root: Path  # the results root it serves a study of

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])


def get_json(url: str, token: str) -> dict:
    """A GET of the JSON API as a browser that opened the printed URL sends it (the token as its cookie)."""
    port = url.split("/")[2].rsplit(":", 1)[1]
    request = urllib.request.Request(url, headers={"Cookie": f"caesweep-token-{port}={token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for(url: str, token: str) -> dict:
    """Poll until the server answers (it started listening before printing, but imports may be slow)."""
    started = time.monotonic()
    while True:
        try:
            return get_json(url, token)
        except OSError:
            if time.monotonic() - started > DEADLINE:
                raise
            time.sleep(0.2)


@contextlib.contextmanager
def dashboard(root: Path, *options: str, name: str = STUDY) -> Iterator[Served]:
    """``python -m analysis.dashboard`` as a real process on a free loopback port, stopped at the end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "analysis.dashboard", "--study", name, "--root", str(root), "--port", "0", *options],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = [process.stdout.readline().strip() for _ in range(3)]  # type: ignore[union-attr]
        found = re.search(r"(http://[^/]+)(/dashboard/studies/\d+)\?token=([\w-]+)", lines[0])
        assert found, f"no URL printed: {lines} {process.poll() and process.stderr.read()}"  # type: ignore[union-attr]
        served = Served(found.group(0), found.group(1), lines, found.group(3), root)
        wait_for(f"{served.base}/api/studies", served.token)
        yield served
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("results")
    make_dashboard_study(root)
    with dashboard(root) as running:
        yield running


def test_the_api_lists_the_study_with_its_metric_names_and_trial_attributes(served: Served) -> None:
    assert served.base.startswith("http://127.0.0.1:")  # loopback by default
    studies = wait_for(f"{served.base}/api/studies", served.token)["study_summaries"]
    assert [s["study_name"] for s in studies] == [STUDY]
    study_id = studies[0]["study_id"]
    assert served.url.endswith(f"/dashboard/studies/{study_id}?token={served.token}")
    detail = get_json(f"{served.base}/api/studies/{study_id}", served.token)
    assert detail["objective_names"] == METRICS
    assert len(detail["trials"]) == 6
    keys = {a["key"] for t in detail["trials"] for a in t["user_attrs"]}
    assert set(ATTRS) <= keys


def test_a_study_without_tensorboard_logs_is_served_with_a_note(served: Served) -> None:
    assert served.lines[1].startswith(f"note: study '{STUDY}' has no TensorBoard logs")


def test_it_listens_on_loopback_only(served: Served) -> None:
    """The kernel's table of listening TCP sockets: the server's port is bound to 127.0.0.1 and nothing else."""
    port = served.port
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


# --- the guard: only this dashboard's own page, by its own name, with the printed token ----------------------


def request(
    served: Served, method: str, path: str, host: str | None = None, origin: str | None = None,
    token: bool = True, body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One real HTTP request with the headers a browser (or a page attacking the dashboard) would send."""
    headers = {"Host": f"127.0.0.1:{served.port}" if host is None else host}
    if token:
        headers["Cookie"] = f"caesweep-token-{served.port}={served.token}"
    if origin is not None:
        headers["Origin"] = origin
    if body is not None:
        headers["Content-Type"] = "application/json"
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def stored_trials(root: Path, name: str = STUDY) -> int:
    """How many trials the study's optuna.db holds (KeyError: the study is gone)."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{study_paths(name, root).optuna_db}")
    return len(optuna.load_study(study_name=name, storage=storage).trials)


def test_a_request_by_another_name_is_refused_so_dns_rebinding_reaches_nothing(served: Served) -> None:
    """A page of rebind.attacker.example whose name now points at 127.0.0.1 sends its own name as Host."""
    for host in ("rebind.attacker.example", f"rebind.attacker.example:{served.port}", "localhost.attacker.example",
                 f"127.0.0.1.nip.io:{served.port}", f"evil@127.0.0.1:{served.port}", ""):
        status, _, body = request(served, "GET", "/api/studies", host=host)
        assert status == 421 and b"study_summaries" not in body, host
    for host in (f"127.0.0.1:{served.port}", f"localhost:{served.port}", f"LOCALHOST:{served.port}"):
        status, _, body = request(served, "GET", "/api/studies", host=host)
        assert status == 200 and json.loads(body)["study_summaries"][0]["study_name"] == STUDY, host


def test_only_a_browser_that_opened_the_printed_url_is_answered(served: Served) -> None:
    status, _, body = request(served, "GET", "/api/studies", token=False)
    assert status == 403 and b"study_summaries" not in body
    wrong = Served(served.url, served.base, served.lines, "x" + served.token[1:], served.root)
    assert request(wrong, "GET", "/api/studies")[0] == 403
    path = served.url.split(served.base, 1)[1]  # /dashboard/studies/N?token=...
    status, headers, _ = request(served, "GET", path, token=False)
    assert status == 303 and headers["Location"] == path.split("?")[0]  # the token leaves the address bar...
    assert headers["Set-Cookie"].startswith(f"caesweep-token-{served.port}={served.token};")  # ...for a cookie
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]


def test_a_read_only_dashboard_deletes_and_edits_nothing(served: Served) -> None:
    study_id = get_json(f"{served.base}/api/studies", served.token)["study_summaries"][0]["study_id"]
    status, _, body = request(served, "DELETE", f"/api/studies/{study_id}", origin=served.base)
    assert status == 403 and b"--allow-writes" in body
    note = json.dumps({"version": 1, "body": "hello"}).encode()
    assert request(served, "PUT", f"/api/studies/{study_id}/note", origin=served.base, body=note)[0] == 403
    assert stored_trials(served.root) == 6  # the study is still there, whole


def test_with_allow_writes_only_the_dashboards_own_page_writes(tmp_path: Path) -> None:
    make_dashboard_study(tmp_path)
    with dashboard(tmp_path, "--allow-writes") as served:
        study_id = get_json(f"{served.base}/api/studies", served.token)["study_summaries"][0]["study_id"]
        for origin in ("http://rebind.attacker.example", f"http://rebind.attacker.example:{served.port}",
                       f"https://127.0.0.1:{served.port}", f"http://127.0.0.1:{served.port + 1}", "null"):
            status, _, body = request(served, "DELETE", f"/api/studies/{study_id}", origin=origin)
            assert status == 403 and b"another site" in body, origin
        assert stored_trials(tmp_path) == 6
        status, _, _ = request(served, "DELETE", f"/api/studies/{study_id}", origin=served.base)
        assert status in (200, 204)  # the dashboard's own page may delete once the user allowed writes
    with pytest.raises(KeyError):
        stored_trials(tmp_path)


@pytest.mark.parametrize("host, accepted", [
    ("127.0.0.1:8080", True), ("localhost", True), ("[::1]:8080", True), ("10.1.2.3:8080", True),
    ("[fe80::1]", True), ("rebind.attacker.example:8080", False), ("localhost.:8080", True),
    ("127.0.0.1:http", False), ("localhost:8080/x", False), ("", False), ("a b", False),
])
def test_the_guard_knows_its_own_names(host: str, accepted: bool) -> None:
    guard = Guard(lambda environ, start: [], names=served_names("127.0.0.1"), port=8080, token="t", writes=False)
    assert guard.addressed(host) is accepted


def test_the_name_given_as_host_is_one_of_its_names() -> None:
    assert "cluster-login-1" in served_names("cluster-login-1")
    assert "rebind.attacker.example" not in served_names("0.0.0.0")


# --- what it opens: the study's own database, or a storage named again ---------------------------------------


def _moved_storage(root: Path) -> tuple[Path, str]:
    """The study's optuna.db moved outside the folder, and study.json naming it there (as a shared storage)."""
    make_dashboard_study(root / "results")
    paths = study_paths(STUDY, root / "results")
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    database = elsewhere / "optuna.db"
    paths.optuna_db.rename(database)
    url = f"sqlite:///{database}"
    meta = json.loads(paths.meta.read_text())
    paths.meta.write_text(json.dumps({**meta, "storage": url}))
    return database, url


def test_a_storage_the_folder_names_elsewhere_is_opened_only_when_named_again(tmp_path: Path) -> None:
    database, url = _moved_storage(tmp_path)
    before = (database.read_bytes(), database.stat().st_mtime_ns, sorted(database.parent.iterdir()))
    proc = subprocess.run(
        [sys.executable, "-m", "analysis.dashboard", "--study", STUDY, "--root", str(tmp_path / "results"),
         "--port", "0"], cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    one_line_error(proc.returncode, proc.stderr, "records the Optuna storage", f"--storage {url}")
    assert proc.stdout == ""
    assert (database.read_bytes(), database.stat().st_mtime_ns, sorted(database.parent.iterdir())) == before
    with dashboard(tmp_path / "results", "--storage", url) as served:  # named again: served
        studies = get_json(f"{served.base}/api/studies", served.token)["study_summaries"]
        assert [s["study_name"] for s in studies] == [STUDY]


def test_a_storage_named_for_a_study_that_keeps_its_own_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_dashboard_study(tmp_path)
    code, _, err = run_cli(["--study", STUDY, "--root", str(tmp_path), "--port", "0", "--storage",
                            f"sqlite:///{tmp_path / 'other.db'}"], capsys)
    one_line_error(code, err, "keeps its Optuna storage in its own folder; drop --storage")
    assert not (tmp_path / "other.db").exists()


def test_a_corrupt_database_is_one_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_dashboard_study(tmp_path)
    database = study_paths(STUDY, tmp_path).optuna_db
    data = bytearray(database.read_bytes())
    data[4096:] = b"\xff" * (len(data) - 4096)  # every page after the first overwritten
    database.write_bytes(bytes(data))
    code, out, err = run_cli(["--study", STUDY, "--root", str(tmp_path), "--port", "0"], capsys)
    one_line_error(code, err, f"{database} is not a readable Optuna database")
    assert out == ""


def test_a_database_that_is_a_link_out_of_the_folder_is_not_opened(tmp_path: Path) -> None:
    database, _ = _moved_storage(tmp_path)
    paths = study_paths(STUDY, tmp_path / "results")
    meta = json.loads(paths.meta.read_text())
    paths.meta.write_text(json.dumps({**meta, "storage": "sqlite:///optuna.db"}))
    paths.optuna_db.symlink_to(database)  # the folder's "own" database is someone else's file
    before = (database.read_bytes(), database.stat().st_mtime_ns, sorted(database.parent.iterdir()))
    proc = subprocess.run(
        [sys.executable, "-m", "analysis.dashboard", "--study", STUDY, "--root", str(tmp_path / "results"),
         "--port", "0"], cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    one_line_error(proc.returncode, proc.stderr, f"{paths.optuna_db} is a link")
    assert (database.read_bytes(), database.stat().st_mtime_ns, sorted(database.parent.iterdir())) == before
