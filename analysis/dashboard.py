"""``python -m analysis.dashboard``: serve optuna-dashboard on one study's Optuna storage, on loopback.

::

    python -m analysis.dashboard --study NAME [--root DIR] [--port 8080] [--host 127.0.0.1]

The dashboard is optuna-dashboard itself (its WSGI app on a threaded ``wsgiref`` server, as its own CLI
runs it) on the storage that ``study.json`` names, resolved against where the study folder is now. It binds
to 127.0.0.1 unless told otherwise: optuna-dashboard has no login, and anyone who reaches it can edit notes
and delete studies. ``--port 0`` takes any free port; the URL printed is the one that answers. It also says
where the study's TensorBoard logs are (or that the study predates them).

An unknown study, a study without an Optuna storage (keras-tuner), a missing database file or a port in use
is one line on stderr and exit code 2; nothing is created or written.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from cae.cli import ArgumentParser, run
from cae.errors import StudyError, UsageError
from results import DEFAULT_ROOT, StudyPaths, read_meta, storage_url, study_paths

DEFAULT_PORT = 8080  # optuna-dashboard's own default
DEFAULT_HOST = "127.0.0.1"  # loopback: the dashboard has no authentication
SQLITE_WAIT_SECONDS = 60  # a running sweep writes the same SQLite file: wait for its locks, do not fail


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m analysis.dashboard",
        description="Serve optuna-dashboard on a study's Optuna storage (loopback only unless --host says "
        "otherwise) and print its URL; Ctrl-C stops it.",
    )
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"results root (default {DEFAULT_ROOT})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)")
    parser.add_argument(
        "--host", default=DEFAULT_HOST,
        help=f"address to bind (default {DEFAULT_HOST}; another address exposes the study to that network)",
    )
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
    url = _storage_url(paths)
    storage = _open(url, paths.name)
    study_id = _study_id(storage, paths.name, url)
    server = _bind(args.host, args.port, storage)
    try:
        host, port = server.server_address[:2]
        print(f"optuna-dashboard for study {paths.name}: http://{_url_host(str(host))}:{port}/dashboard/studies/"
              f"{study_id}", flush=True)
        print(_tensorboard_note(paths), flush=True)
        print("Ctrl-C stops it.", flush=True)
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _storage_url(paths: StudyPaths) -> str:
    """The study's storage URL; a SQLite file must already exist (the dashboard must not create one)."""
    meta = read_meta(paths)
    url = storage_url(meta, paths)
    if url is None:
        raise UsageError(
            f"study {paths.name!r} ran with the keras-tuner engine and has no Optuna storage to serve; "
            f"`python -m analysis.report --study {paths.name}` reports on it"
        )
    if url.startswith("sqlite:///"):
        database = Path(url.removeprefix("sqlite:///"))
        if not database.is_file():
            raise StudyError(f"study {paths.name!r} has no Optuna database at {database}; no trial was ever started")
    return url


def _open(url: str, name: str) -> Any:
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    kwargs = {"connect_args": {"timeout": SQLITE_WAIT_SECONDS}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except (SQLAlchemyError, RuntimeError) as exc:  # RuntimeError: a schema this Optuna cannot read
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        hint = "; its password comes from PGPASSWORD or ~/.pgpass" if url.startswith("postgres") else ""
        raise StudyError(f"cannot open the Optuna storage of study {name!r}: {first}{hint}") from None


def _study_id(storage: Any, name: str, url: str) -> int:
    try:
        return int(storage.get_study_id_from_name(name))
    except KeyError:
        raise StudyError(f"the Optuna storage of study {name!r} holds no study of that name ({_shown(url)})") from None


def _shown(url: str) -> str:
    """The URL as it may be printed: any password masked."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _bind(host: str, port: int, storage: Any) -> _Server:
    """Bind before anything is printed, so a port in use is one clear line, not a traceback."""
    from optuna_dashboard import wsgi

    try:
        return make_server(host, port, wsgi(storage), server_class=_Server, handler_class=_QuietHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is in use; pass another --port (0 takes any free port)") from None
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); check --host and --port") from None


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
