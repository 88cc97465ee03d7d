"""MLflow's REST API over the standard library: the calls a study's driver and trials make to a tracking server.

Why not ``MlflowClient``: ``import mlflow`` loads the whole package (its GenAI evaluation, FastAPI, pandas-backed
datasets) whatever one uses, 0.6 s of CPU in a trial worker that has TensorFlow and Ray loaded already and 1 s in
the driver, measured on these 2 cores: more than all the requests of an 8-trial sweep. The REST API is MLflow's
documented, versioned interface (https://mlflow.org/docs/latest/api_reference/rest-api.html); this module
speaks the dozen calls caesweep makes, with the settings MLflow's own client reads from the environment:

- credentials: ``MLFLOW_TRACKING_TOKEN`` (a bearer token), else ``MLFLOW_TRACKING_USERNAME`` and
  ``MLFLOW_TRACKING_PASSWORD`` (basic), else the ``[mlflow]`` section of ``~/.mlflow/credentials``;
- TLS: ``MLFLOW_TRACKING_INSECURE_TLS``, ``MLFLOW_TRACKING_SERVER_CERT_PATH`` (a CA bundle),
  ``MLFLOW_TRACKING_CLIENT_CERT_PATH`` (a client certificate);
- retries: ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` and
  ``MLFLOW_HTTP_REQUEST_TIMEOUT`` win over the caller's defaults, as in MLflow; the same transient answers are
  retried (408, 429, 500, 502, 503, 504, and a connection that fails).

Authentication through a plugin (``MLFLOW_TRACKING_AUTH``) or AWS SigV4 (``MLFLOW_TRACKING_AWS_SIGV4``) is
MLflow's client's alone: :func:`unsupported` names it, and the study is refused in one line.

Artifacts go through the server's artifact proxy (``mlflow server``'s default: runs whose ``artifact_uri`` is
``mlflow-artifacts:/...``), with a PUT as MLflow's client makes it. A run whose artifacts the server does not
proxy (a server started with ``--no-serve-artifacts``: ``s3://``, a shared path) has them written by MLflow's
own artifact client, imported then, in the thread that sends.
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import getpass
import json
import os
import posixpath
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
PROXIED = "mlflow-artifacts"  # the scheme of a run's artifact_uri when the server proxies its artifacts
TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})  # MLflow's own list of answers worth asking again
UNSUPPORTED = ("MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_AWS_SIGV4")
CREDENTIALS_FILE = Path("~/.mlflow/credentials")


class RestError(Exception):
    """The server answered with an error (``status``: its HTTP status; ``code``: MLflow's ``error_code``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}" if code else f"HTTP {status}: {message}")
        self.status, self.code = status, code


@dataclass(frozen=True)
class Run:
    """What caesweep reads of an MLflow run."""

    run_id: str
    status: str
    artifact_uri: str
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, answer: Mapping[str, Any]) -> Run:
        info, data = answer.get("info", {}), answer.get("data", {})
        return cls(run_id=str(info["run_id"]), status=str(info.get("status", "")),
                   artifact_uri=str(info.get("artifact_uri", "")),
                   tags={str(t["key"]): str(t.get("value", "")) for t in data.get("tags", [])})


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    lifecycle_stage: str


def metric(key: str, value: float, timestamp: int, step: int) -> dict[str, Any]:
    return {"key": key, "value": value, "timestamp": timestamp, "step": step}


def pair(key: str, value: str) -> dict[str, str]:
    """A parameter or a tag."""
    return {"key": key, "value": value}


def unsupported() -> str | None:
    """The environment variable of an authentication only MLflow's own client knows, if one is set."""
    return next((name for name in UNSUPPORTED if os.environ.get(name)), None)


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def _basic_credentials() -> tuple[str, str] | None:
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user is None or password is None:
        parser = configparser.ConfigParser()
        with contextlib.suppress(OSError, configparser.Error):
            parser.read(CREDENTIALS_FILE.expanduser())
        if parser.has_section("mlflow"):
            user = user if user is not None else parser["mlflow"].get("mlflow_tracking_username")
            password = password if password is not None else parser["mlflow"].get("mlflow_tracking_password")
    return (user, password) if user is not None and password is not None else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error (HTTP 30x), never followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class RestClient:
    """MLflow's tracking REST API at ``uri`` (an http(s) URL), with MLflow's environment settings (see the
    module's docstring); ``retries``, ``backoff`` and ``timeout`` are the defaults the environment may override."""

    def __init__(self, uri: str, retries: int = 2, backoff: float = 1.0, timeout: float = 30.0) -> None:
        parts = urlsplit(uri)
        # A user and password in the URL are basic credentials (as MLflow's client takes them), never sent as a host.
        in_url = (unquote(parts.username), unquote(parts.password or "")) if parts.username is not None else None
        netloc = parts.netloc.rsplit("@", 1)[-1]
        self.uri = urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")
        self.retries = int(_env_number("MLFLOW_HTTP_REQUEST_MAX_RETRIES", retries))
        self.backoff = _env_number("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", backoff)
        self.timeout = _env_number("MLFLOW_HTTP_REQUEST_TIMEOUT", timeout)
        self.headers = {"User-Agent": "caesweep"}
        token, basic = os.environ.get("MLFLOW_TRACKING_TOKEN"), in_url or _basic_credentials()
        if token and in_url is None:
            self.headers["Authorization"] = f"Bearer {token}"
        elif basic is not None:
            self.headers["Authorization"] = "Basic " + base64.b64encode(":".join(basic).encode()).decode()
        # No redirect is followed: urllib would carry the credentials to wherever a redirect points.
        handlers: list[Any] = [_NoRedirect()]
        if urlsplit(self.uri).scheme == "https":
            handlers.append(urllib.request.HTTPSHandler(context=self._tls()))
        self.opener = urllib.request.build_opener(*handlers)

    @staticmethod
    def _tls() -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
        if _truthy("MLFLOW_TRACKING_INSECURE_TLS"):  # the user's explicit choice, as in MLflow
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH"):
            context.load_cert_chain(os.environ["MLFLOW_TRACKING_CLIENT_CERT_PATH"])
        return context

    # -- transport ------------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, query: Mapping[str, Any] | None = None,
                data: bytes | None = None, content_type: str = "application/json") -> dict[str, Any]:
        """One call (``path`` under the server's root), retried on transient failures; the answer's JSON."""
        url = self.uri + path + (f"?{urlencode(query)}" if query else "")
        payload = json.dumps(body).encode() if body is not None else data
        headers = {**self.headers, **({"Content-Type": content_type} if payload is not None else {})}
        attempt = 0
        while True:
            try:
                with self.opener.open(urllib.request.Request(url, payload, headers, method=method),
                                      timeout=self.timeout) as answer:
                    text = answer.read()
                return json.loads(text) if text.strip() else {}
            except urllib.error.HTTPError as exc:
                if exc.code not in TRANSIENT or attempt >= self.retries:
                    raise self._error(exc) from None
                exc.close()
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if attempt >= self.retries:
                    raise
            time.sleep(self.backoff * 2**attempt)
            attempt += 1

    @staticmethod
    def _error(exc: urllib.error.HTTPError) -> RestError:
        with exc:
            text = exc.read().decode("utf-8", "replace")
        try:
            said = json.loads(text)
        except ValueError:
            said = {}
        if not isinstance(said, dict):
            said = {}
        return RestError(exc.code, str(said.get("error_code", "")), str(said.get("message", text.strip()[:200])))

    def _post(self, endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"{API}/{endpoint}", body=dict(body))

    def _get(self, endpoint: str, **query: Any) -> dict[str, Any]:
        return self.request("GET", f"{API}/{endpoint}", query=query)

    # -- experiments ----------------------------------------------------------------------------------------------

    def search_experiments(self, max_results: int = 1) -> list[Experiment]:
        answer = self._post("experiments/search", {"max_results": max_results})
        return [self._experiment(e) for e in answer.get("experiments", [])]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            answer = self._get("experiments/get-by-name", experiment_name=name)
        except RestError as exc:
            if exc.code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        return self._experiment(answer["experiment"])

    def create_experiment(self, name: str, tags: Mapping[str, str]) -> str:
        answer = self._post("experiments/create", {"name": name, "tags": [pair(k, v) for k, v in tags.items()]})
        return str(answer["experiment_id"])

    @staticmethod
    def _experiment(answer: Mapping[str, Any]) -> Experiment:
        return Experiment(str(answer["experiment_id"]), str(answer.get("name", "")),
                          str(answer.get("lifecycle_stage", "active")))

    # -- runs -----------------------------------------------------------------------------------------------------

    def search_runs(self, experiment_ids: Sequence[str], filter_string: str = "", max_results: int = 1000,
                    page_token: str | None = None) -> tuple[list[Run], str | None]:
        """One page of the active runs that match, and the next page's token (None: the last page)."""
        body: dict[str, Any] = {"experiment_ids": list(experiment_ids), "filter": filter_string,
                                "max_results": max_results, "run_view_type": "ACTIVE_ONLY"}
        if page_token:
            body["page_token"] = page_token
        answer = self._post("runs/search", body)
        return [Run.of(r) for r in answer.get("runs", [])], answer.get("next_page_token") or None

    def all_runs(self, experiment_ids: Sequence[str], filter_string: str = "") -> Iterator[Run]:
        token: str | None = None
        while True:
            runs, token = self.search_runs(experiment_ids, filter_string, page_token=token)
            yield from runs
            if not token:
                return

    def create_run(self, experiment_id: str, tags: Mapping[str, str], run_name: str) -> Run:
        answer = self._post("runs/create", {
            "experiment_id": experiment_id, "start_time": int(time.time() * 1000), "run_name": run_name,
            "user_id": _user(), "tags": [pair(k, v) for k, v in tags.items()],
        })
        return Run.of(answer["run"])

    def get_run(self, run_id: str) -> Run:
        return Run.of(self._get("runs/get", run_id=run_id)["run"])

    def metric_steps(self, run_id: str, key: str) -> set[int]:
        """The steps at which the run holds ``key``."""
        steps: set[int] = set()
        token: str | None = None
        while True:
            query = {"run_id": run_id, "metric_key": key, "max_results": 25000}
            answer = self._get("metrics/get-history", **query, **({"page_token": token} if token else {}))
            steps.update(int(m.get("step", 0)) for m in answer.get("metrics", []))
            token = answer.get("next_page_token") or None
            if not token:
                return steps

    def log_batch(self, run_id: str, metrics: Sequence[Mapping[str, Any]] = (),
                  params: Sequence[Mapping[str, str]] = (), tags: Sequence[Mapping[str, str]] = ()) -> None:
        self._post("runs/log-batch", {"run_id": run_id, "metrics": list(metrics), "params": list(params),
                                      "tags": list(tags)})

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self._post("runs/set-tag", {"run_id": run_id, "key": key, "value": value})

    def set_status(self, run_id: str, status: str, ended: bool = True) -> None:
        """The run's status; ``ended``: with its end time now (a run set RUNNING again has none)."""
        body: dict[str, Any] = {"run_id": run_id, "status": status}
        if ended:
            body["end_time"] = int(time.time() * 1000)
        self._post("runs/update", body)

    def delete_run(self, run_id: str) -> None:
        self._post("runs/delete", {"run_id": run_id})

    # -- artifacts ------------------------------------------------------------------------------------------------

    def log_artifact(self, run: Run, local: Path, folder: str) -> None:
        """Upload the file ``local`` as ``folder/<its name>`` of ``run``'s artifacts: through the server's proxy,
        or, for artifacts the server does not proxy, with MLflow's own artifact client."""
        where = urlsplit(run.artifact_uri)
        if where.scheme == PROXIED and where.netloc in ("", urlsplit(self.uri).netloc):
            path = posixpath.join(ARTIFACTS_API, where.path.lstrip("/"), folder, local.name)
            self.request("PUT", quote(path), data=local.read_bytes(), content_type="application/octet-stream")
            return
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        get_artifact_repository(run.artifact_uri).log_artifact(str(local), folder)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001  (no user name: MLflow says "unknown" too)
        return "unknown"
