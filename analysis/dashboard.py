"""``python -m analysis.dashboard``: serve optuna-dashboard on one study's Optuna storage, on loopback.

::

    python -m analysis.dashboard --study NAME [--root DIR] [--port 8080] [--host 127.0.0.1] [--storage URL]
                                 [--allow-writes]

The dashboard is optuna-dashboard itself (its WSGI app on a threaded ``wsgiref`` server, as its own CLI
runs it) on the study's own ``optuna.db``, resolved against where the study folder is now. A storage that
``study.json`` names elsewhere (a PostgreSQL server, a SQLite file outside the folder) is opened only when the
user names it again with ``--storage URL``, as ``search resume`` requires: a study folder never chooses where
caesweep connects with the user's credentials. ``--port 0`` takes any free port; the URL printed is the one
that answers. It also says where the study's TensorBoard logs are (or that the study predates them).

optuna-dashboard has no login, and anyone who reaches it can edit notes and delete studies, so caesweep puts a
guard in front of it (:class:`Guard`): it binds to 127.0.0.1 unless told otherwise; it answers only requests
addressed to itself by name (the ``Host`` header: a loopback name, what ``--host`` named, or an IP address), so a
web page cannot reach it through DNS rebinding; it answers only a browser that opened the printed URL, whose
random token becomes a cookie (another user of the machine, or a page that guesses the port, gets 403); and it
is read-only unless started with ``--allow-writes``, which then also refuses a write whose ``Origin`` is not the
dashboard's own.

An unknown study, a study without an Optuna storage (keras-tuner), a missing or corrupt database file, a storage
not named again, or a port in use is one line on stderr and exit code 2; nothing is created or written.
"""

from __future__ import annotations

import argparse
import errno
import hmac
import ipaddress
import os
import secrets
import socket
import stat
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from cae.cli import ArgumentParser, run
from cae.errors import StudyError, UsageError
from results import DEFAULT_ROOT, StudyPaths, read_meta, storage_url, study_paths

DEFAULT_PORT = 8080  # optuna-dashboard's own default
DEFAULT_HOST = "127.0.0.1"  # loopback: the dashboard has no authentication
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})  # names that only ever mean this machine
WILDCARDS = frozenset({"", "0.0.0.0", "::"})  # --host values that listen on every address of the machine
READS = frozenset({"GET", "HEAD", "OPTIONS"})  # methods that change nothing in optuna-dashboard's API
TOKEN = "token"  # the query parameter of the printed URL, and the start of the cookie's name
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m analysis.dashboard",
        description="Serve optuna-dashboard on a study's Optuna storage (loopback only unless --host says "
        "otherwise, read-only unless --allow-writes) and print its URL; Ctrl-C stops it.",
    )
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"results root (default {DEFAULT_ROOT})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)")
    parser.add_argument(
        "--host", default=DEFAULT_HOST,
        help=f"address to bind (default {DEFAULT_HOST}; another address exposes the study to that network)",
    )
    parser.add_argument("--storage", default=None,
                        help="the Optuna storage URL the study records, when it is not the study's own optuna.db")
    parser.add_argument("--allow-writes", action="store_true",
                        help="let the dashboard edit notes and delete trials or studies (default: read-only)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a port; use 1-65535, or 0 for any free port")
    return args


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per request, as optuna-dashboard's own wsgiref server (the page polls while plots load)."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """No line per request on stderr: the terminal keeps the URL and the notes readable."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    paths = study_paths(args.study, args.root)
    url = _storage_url(paths, args.storage)
    storage = _open(url)
    study_id = _study_id(storage, paths.name, url)
    from optuna_dashboard import wsgi

    app = wsgi(storage)
    server = _bind(args.host, args.port, app)
    try:
        host, port = server.server_address[:2]
        guard = Guard(app, names=served_names(args.host), port=int(port),
                      token=secrets.token_urlsafe(24), writes=args.allow_writes)
        server.set_app(guard)
        print(f"optuna-dashboard for study {paths.name}: http://{_url_host(str(host))}:{port}"
              f"/dashboard/studies/{study_id}?{TOKEN}={guard.token}", flush=True)
        print(_tensorboard_note(paths), flush=True)
        writes = ("notes and deletions are allowed (--allow-writes)" if args.allow_writes
                  else "read-only: --allow-writes lets it edit notes and delete")
        print(f"{writes}; the URL's token is this run's login, Ctrl-C stops it.", flush=True)
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _storage_url(paths: StudyPaths, given: str | None) -> str:
    """The storage to serve: the study's own SQLite file (which must exist: the dashboard must not create one),
    or the storage ``study.json`` names elsewhere when the user names it too (``given``)."""
    from search.storage import check_owner, check_storage, keep_password, shown

    meta = read_meta(paths)
    recorded = storage_url(meta, paths)
    name = paths.name
    if recorded is None:
        raise UsageError(
            f"study {name!r} ran with the keras-tuner engine and has no Optuna storage to serve; "
            f"`python -m analysis.report --study {name}` reports on it"
        )
    if recorded == paths.default_storage_url():
        if given is not None:
            raise UsageError(f"study {name!r} keeps its Optuna storage in its own folder; drop --storage")
        try:
            regular = stat.S_ISREG(os.lstat(paths.optuna_db).st_mode)
        except FileNotFoundError:
            raise StudyError(f"study {name!r} has no Optuna database at {paths.optuna_db}; no trial was ever "
                             "started") from None
        if not regular:
            raise StudyError(f"{paths.optuna_db} is not a regular file; replace it with the study's database")
        return recorded
    if given is None:
        raise UsageError(
            f"study {name!r} records the Optuna storage {shown(recorded)}; a study folder does not choose where "
            f"caesweep connects with your credentials: to serve it, pass it yourself: --storage {shown(recorded)}"
        )
    if given.startswith("sqlite:///") and not Path(given.removeprefix("sqlite:///")).is_file():
        raise UsageError(f"--storage {given}: no such SQLite file (the dashboard creates no database)")
    url = check_storage(given)
    keep_password(given)
    check_owner(url, name, meta.get("study_id"))
    return url


def _open(url: str) -> Any:
    """The storage, opened as every caesweep command opens it (SQLite waits for a running sweep's locks; libpq
    sends a password only through SCRAM); a corrupt SQLite file is one line naming it."""
    from sqlalchemy.exc import SQLAlchemyError

    from search.storage import open_storage, shown

    try:
        return open_storage(url)
    except (SQLAlchemyError, RuntimeError) as exc:  # RuntimeError: a schema this Optuna cannot read
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        hint = "; its password comes from PGPASSWORD or ~/.pgpass" if url.startswith("postgres") else ""
        raise StudyError(f"cannot open the Optuna storage {shown(url)}: {first}{hint}") from None


def _study_id(storage: Any, name: str, url: str) -> int:
    from search.storage import readable_sqlite, shown

    try:
        with readable_sqlite(url):
            return int(storage.get_study_id_from_name(name))
    except KeyError:
        raise StudyError(f"the Optuna storage of study {name!r} holds no study of that name ({shown(url)})") from None


def _bind(host: str, port: int, app: WSGIApp) -> _Server:
    """Bind before anything is printed, so a port in use is one clear line, not a traceback. Nothing is answered
    before ``serve_forever``, by which time the guard stands in front of ``app``."""
    try:
        return make_server(host, port, app, server_class=_Server, handler_class=_QuietHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is in use; pass another --port (0 takes any free port)") from None
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); check --host and --port") from None


def served_names(host: str) -> frozenset[str]:
    """The host names a request may address the dashboard by: loopback names, the ``--host`` it was given and,
    when that listens on every address, this machine's own names. IP addresses are always accepted (see
    :meth:`Guard.addressed`)."""
    names = {*LOOPBACK_NAMES, host.lower().strip("[]")}
    if host in WILDCARDS:
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return frozenset(n for n in names if n)


@dataclass(frozen=True)
class Guard:
    """The WSGI middleware in front of optuna-dashboard: what reaches it must be addressed to this dashboard by
    name, come from a browser that opened the printed URL, and, when it writes, be allowed to and come from the
    dashboard's own page."""

    app: WSGIApp
    names: frozenset[str]  # host names it answers to (served_names)
    port: int
    token: str  # the printed URL's token; the browser keeps it as a cookie
    writes: bool  # --allow-writes

    @property
    def cookie(self) -> str:
        return f"caesweep-{TOKEN}-{self.port}"  # cookies are per host, not per port: one per dashboard

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if not self.addressed(str(environ.get("HTTP_HOST", ""))):
            return _refuse(start_response, "421 Misdirected Request",
                           "this dashboard answers only to its own address (the Host of the request is not one)")
        query = dict(parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True))
        if _same(query.get(TOKEN), self.token):
            if method in ("GET", "HEAD") and not str(environ.get("PATH_INFO", "")).startswith("/api/"):
                return self._enter(environ, start_response, query)
        elif not _same(_cookie(environ, self.cookie), self.token):
            return _refuse(start_response, "403 Forbidden",
                           "open the URL that python -m analysis.dashboard printed (it carries this run's token)")
        if method not in READS:
            if not self.writes:
                return _refuse(start_response, "403 Forbidden", "the dashboard is read-only; restart "
                               "python -m analysis.dashboard with --allow-writes to edit notes or delete")
            origin = environ.get("HTTP_ORIGIN")
            if origin is not None and not self.own_origin(str(origin)):
                return _refuse(start_response, "403 Forbidden", "a write from another site's page is refused")
        return self.app(environ, start_response)

    def addressed(self, host_header: str) -> bool:
        """Whether a request's ``Host`` names this dashboard. DNS rebinding points a name the attacker owns at this
        machine, so a page of that name can send requests here: they carry its name, which is not one of ours. An
        IP address cannot be rebound (no name is looked up), so any is accepted: the listening socket already
        decides which addresses reach the dashboard."""
        name = _host_name(host_header)
        if name is None:
            return False
        if name in self.names:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def own_origin(self, origin: str) -> bool:
        """Whether ``Origin`` is the dashboard's own page (``http://<one of our names>:<port>``)."""
        try:
            parts = urlsplit(origin)
            port = parts.port or 80
        except ValueError:
            return False
        return parts.scheme == "http" and port == self.port and self.addressed(parts.netloc)

    def _enter(self, environ: dict[str, Any], start_response: Callable[..., Any], query: dict[str, str]) -> list[bytes]:
        """The printed URL: its token becomes a cookie, and the browser goes on to the same page without it (so
        the token is not left in the address bar or the history)."""
        rest = urlencode({k: v for k, v in query.items() if k != TOKEN})
        location = str(environ.get("PATH_INFO", "/")) + (f"?{rest}" if rest else "")
        start_response("303 See Other", [
            ("Location", location),
            ("Set-Cookie", f"{self.cookie}={self.token}; Path=/; HttpOnly; SameSite=Strict"),
            ("Content-Length", "0"),
        ])
        return [b""]


def _host_name(host_header: str) -> str | None:
    """The name of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``), lower-case; None when malformed."""
    value = host_header.strip().lower()
    if not value or any(c in value for c in "@/?#\\ "):  # a name and a port only: no user, path or spaces
        return None
    try:
        parts = urlsplit(f"//{value}")
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError:
        return None
    return parts.hostname.rstrip(".") if parts.hostname else None


def _cookie(environ: dict[str, Any], name: str) -> str | None:
    try:
        jar = SimpleCookie(str(environ.get("HTTP_COOKIE", "")))
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def _same(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def _refuse(start_response: Callable[..., Any], status: str, reason: str) -> list[bytes]:
    body = f"{reason}\n".encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _tensorboard_note(paths: StudyPaths) -> str:
    folder = paths.tensorboard_dir
    if paths.tensorboard_runs():
        return f"TensorBoard (curves and HParams of every trial): tensorboard --logdir {folder}"
    return (f"note: study {paths.name!r} has no TensorBoard logs (no trial run under {folder}: the study was run "
            "before trials wrote them); the dashboard still shows its Optuna trials")


if __name__ == "__main__":
    sys.exit(run(main))
