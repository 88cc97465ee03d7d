"""search.mlflow_rest: MLflow's REST API over the standard library. What it sends (credentials as MLflow's client
sends them, never a user name as a host), what it retries, where artifacts go when the server does not proxy
them, and that logging a whole trial imports no MLflow (the reason it exists)."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import threading
import urllib.error
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from search.mlflow_rest import RestClient, RestError, Run
from tests.conftest import in_process
from tests.search.test_cli_errors import assert_user_error


class Recorder(ThreadingHTTPServer):
    """A loopback HTTP server that records each request and answers from a script of (status, body)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[dict[str, object]] = []
        self.script: list[tuple[int, dict[str, object]]] = []
        self.location: str | None = None  # sent as Location with every answer, when set

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Recorder

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                 "body": self.rfile.read(length)})
        status, body = self.server.script.pop(0) if self.server.script else (200, {})
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.server.location:
            self.send_header("Location", self.server.location)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _answer  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_credentials_go_as_mlflow_sends_them_and_a_url_user_is_never_a_host(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.mlflow/credentials of the machine's
    user_in_url = recorder.uri.replace("http://", "http://ann:s%40cret@")
    RestClient(user_in_url).search_experiments()
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok")
    RestClient(recorder.uri).set_tag("r1", "k", "v")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    (tmp_path / ".mlflow").mkdir()
    (tmp_path / ".mlflow" / "credentials").write_text(
        "[mlflow]\nmlflow_tracking_username = bob\nmlflow_tracking_password = pw\n")
    RestClient(recorder.uri).delete_run("r1")
    auth = [dict(seen["headers"]).get("Authorization") for seen in recorder.seen]  # type: ignore[call-overload]
    assert auth == ["Basic " + base64.b64encode(b"ann:s@cret").decode(), "Bearer tok",
                    "Basic " + base64.b64encode(b"bob:pw").decode()]
    assert [seen["path"] for seen in recorder.seen] == [
        "/api/2.0/mlflow/experiments/search", "/api/2.0/mlflow/runs/set-tag", "/api/2.0/mlflow/runs/delete"]
    assert json.loads(recorder.seen[1]["body"]) == {"run_id": "r1", "key": "k", "value": "v"}  # type: ignore[arg-type]


def test_a_redirect_is_not_followed_with_the_credentials(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok")
    recorder.script = [(302, {})]  # Location: the recorder itself, where a followed redirect would land
    recorder.location = f"{recorder.uri}/elsewhere"
    with pytest.raises(RestError, match="HTTP 302"):
        RestClient(recorder.uri, retries=2, backoff=0.0).delete_run("r1")
    assert [seen["path"] for seen in recorder.seen] == ["/api/2.0/mlflow/runs/delete"]  # asked once, not followed


def test_transient_answers_are_asked_again_and_errors_say_mlflow_s_code(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    recorder.script = [(503, {}), (200, {"experiment": {"experiment_id": "7", "name": "s",
                                                        "lifecycle_stage": "active"}})]
    found = RestClient(recorder.uri, retries=2, backoff=0.0).get_experiment_by_name("s")
    assert found is not None and found.experiment_id == "7" and len(recorder.seen) == 2
    recorder.script = [(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such experiment"})]
    assert RestClient(recorder.uri, retries=2, backoff=0.0).get_experiment_by_name("t") is None
    recorder.script = [(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "bad step"})]
    with pytest.raises(RestError, match="HTTP 400 INVALID_PARAMETER_VALUE: bad step") as raised:
        RestClient(recorder.uri, retries=2, backoff=0.0).log_batch("r1", [{"key": "m", "value": 1.0}])
    assert raised.value.status == 400 and len(recorder.seen) == 4  # a client error is not asked again
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the user's setting wins, as in MLflow
    recorder.script = [(503, {}), (200, {})]
    with pytest.raises(RestError, match="HTTP 503"):
        RestClient(recorder.uri, retries=2, backoff=0.0).delete_run("r1")


def test_artifacts_the_server_does_not_proxy_are_written_by_mlflow_s_own_repository(tmp_path: Path) -> None:
    store = tmp_path / "artifacts" / "run1"
    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    run = Run(run_id="run1", status="RUNNING", artifact_uri=store.as_uri())
    RestClient("http://127.0.0.1:9").log_artifact(run, model, "model")  # no request: a file store
    assert (store / "model" / "model.keras").read_bytes() == b"weights"


def test_a_proxied_artifact_is_put_under_the_server_s_artifact_api(recorder: Recorder, tmp_path: Path) -> None:
    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    run = Run(run_id="abc", status="RUNNING", artifact_uri="mlflow-artifacts:/3/abc/artifacts")
    RestClient(recorder.uri + "/").log_artifact(run, model, "model")
    seen = recorder.seen[0]
    assert (seen["method"], seen["path"], seen["body"]) == (
        "PUT", "/api/2.0/mlflow-artifacts/artifacts/3/abc/artifacts/model/model.keras", b"weights")


def test_an_authentication_only_mlflow_s_client_knows_is_refused_in_one_line(
    tmp_path: Path, tiny_space: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "my_plugin")
    root = tmp_path / "root"
    proc = in_process(main, "run", "--space", str(tiny_space), "--study", "x", "--root", str(root),
                      "--mlflow", "http://127.0.0.1:9")
    assert_user_error(proc, "MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_TOKEN")
    assert not root.exists()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, signed by its own key (cryptography: a dependency of MLflow)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_tls_is_verified_against_the_ca_bundle_mlflow_s_setting_names(
    recorder: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real TLS server on loopback with a self-signed certificate: refused by default, accepted with its
    certificate in MLFLOW_TRACKING_SERVER_CERT_PATH, or with MLFLOW_TRACKING_INSECURE_TLS."""
    for name in ("SERVER_CERT_PATH", "INSECURE_TLS", "CLIENT_CERT_PATH"):
        monkeypatch.delenv(f"MLFLOW_TRACKING_{name}", raising=False)
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    recorder.socket = context.wrap_socket(recorder.socket, server_side=True)
    uri = recorder.uri.replace("http://", "https://")
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        RestClient(uri, retries=0).delete_run("r1")
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(cert))
    RestClient(uri, retries=0).delete_run("r2")
    monkeypatch.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH")
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
    RestClient(uri, retries=0).delete_run("r3")
    assert [json.loads(seen["body"])["run_id"] for seen in recorder.seen] == ["r2", "r3"]  # type: ignore[arg-type]
