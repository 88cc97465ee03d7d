"""The Optuna storage of a study: opened, checked before a study exists, and recorded relative to the study.

A study's own SQLite file is recorded in ``study.json`` as the relative URL ``sqlite:///optuna.db``, which
caesweep resolves against the study folder wherever that folder is now, so a copied or moved study uses its
own copy and never the original's. An external ``--storage`` URL (PostgreSQL, a SQLite file elsewhere) is
recorded as given (a relative SQLite path made absolute, so ``resume`` from another folder finds it), less any
password: a PostgreSQL password comes from ``PGPASSWORD`` or ``~/.pgpass`` (libpq reads both), so it is in no
file of the study. SQLite on a network filesystem is warned about, and refused for a multi-node cluster.
"""

from __future__ import annotations

import contextlib
import os
import sys
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna

import results
from cae.cli import at_command_end
from cae.errors import StudyError, UsageError

_checked_urls: set[str] = set()  # storages whose schema version this process has already checked
_wal_urls: dict[str, bool] = {}  # SQLite URLs and whether they are kept in WAL mode (see sqlite_wal)
_engines: weakref.WeakSet[Any] = weakref.WeakSet()  # every storage's SQLAlchemy engine (see close_storages)


@contextlib.contextmanager
def readable_sqlite(url: str) -> Iterator[None]:
    """Inside it, a SQLite file that is not a database (corrupt, cut short, not SQLite at all) is one line that
    names the file (a :class:`StudyError`), not SQLAlchemy's traceback. A database that is locked is not corrupt:
    that error, and every error of a server database, is left as it is."""
    from sqlalchemy.exc import DatabaseError, OperationalError

    try:
        yield
    except DatabaseError as exc:
        if not url.startswith("sqlite") or isinstance(exc, OperationalError):
            raise
        path = url.split(":///", 1)[-1]
        raise StudyError(f"{path} is not a readable Optuna database ({_first_line(getattr(exc, 'orig', None) or exc)});"
                         " restore it from a copy of the study") from None


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Optuna RDB storage for any SQLAlchemy URL; SQLite waits for locks instead of failing, and a corrupt SQLite
    file is one line naming it (:func:`readable_sqlite`).

    The schema-version check (alembic reading its revision scripts: ~40 ms, opened on every table rebuild
    during a sweep) runs on the first opening of each URL per process only.
    """
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    elif url.startswith("postgres"):
        engine_kwargs = {"connect_args": postgres_connect_args(url)}
    checked = url in _checked_urls
    with readable_sqlite(url):
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, skip_compatibility_check=checked)
    _checked_urls.add(url)
    _engines.add(storage.engine)
    if url not in _wal_urls:  # the mount table is read once per URL and process, like the schema check
        _wal_urls[url] = sqlite_wal(url)
    if _wal_urls[url]:
        _use_wal(storage)
    return storage


def sqlite_wal(url: str, mountinfo: str | None = None) -> bool:
    """Whether ``url``'s SQLite file is kept in write-ahead-log mode: when it lies on a local filesystem.

    In WAL mode with ``synchronous=NORMAL`` a commit is one append to the log, without the two fsyncs of the
    default rollback journal (measured here: Optuna's ask, two reports and tell in 30 ms instead of 45); a
    killed process loses nothing committed (the log is in the file), only a power cut can lose the last
    commits, and readers (optuna-dashboard, `search list`) no longer block the driver. WAL needs shared memory
    between the processes that open the file, which network filesystems do not give: there (or where the mount
    table cannot be read) the default journal is kept. ``mountinfo``: as for :func:`sqlite_on_network`."""
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return False
    path = Path(url.removeprefix("sqlite:///")).absolute()
    mount = results.filesystem_of(path.parent) if mountinfo is None else results.mount_of(path.parent, mountinfo)
    return mount is not None and not mount.network


def _use_wal(storage: optuna.storages.RDBStorage) -> None:
    from sqlalchemy import event

    def pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # kept by the file; the first connection sets it
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(storage.engine, "connect", pragmas)
    storage.engine.dispose()  # the connections opened while the storage was set up did not run it


def close_storages() -> None:
    """Close the idle connections of every storage this process opened (each stays usable: it connects again).

    A storage's engine keeps its connections open until it is garbage-collected, which happens at no set time;
    and the last connection to a SQLite file in WAL mode to close folds the log into the database file and
    removes ``optuna.db-wal`` and ``-shm``. Closing them when a command ends makes that happen then, so a study
    folder is whole in ``optuna.db`` once a command returns, and a later command's reading does not rewrite it."""
    for engine in list(_engines):
        engine.dispose()


at_command_end(close_storages)


SECRET_KEYS = ("password", "sslpassword")  # query keys of a URL that hold secrets: masked, never recorded


def shown(url: str) -> str:
    """The URL as it may be printed: its password, and any secret in its query, masked."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url.split("@")[-1].split("?")[0]
    masked = {k: ("MASKED" if k in SECRET_KEYS else v) for k, v in parsed.query.items()}
    return parsed.set(query=masked).render_as_string(hide_password=True).replace("=MASKED", "=***")


def postgres_connect_args(url: str) -> dict[str, Any]:
    """How caesweep connects to PostgreSQL: with a time-out, and asking libpq (16 and newer) to send a password
    only through SCRAM: a server that asks for it in clear text (or as an MD5 hash) gets nothing. A URL that says
    otherwise (``?require_auth=md5``) is followed."""
    from sqlalchemy.engine import make_url

    args: dict[str, Any] = {"connect_timeout": 10}
    if "require_auth" not in make_url(url).query and _libpq_version() >= 160000:
        args["require_auth"] = "scram-sha-256,none"
    return args


def _libpq_version() -> int:
    try:
        import psycopg

        return int(psycopg.pq.version())
    except (ImportError, AttributeError):
        return 0


POSTGRES_EXTRA = "pip install 'caesweep[postgres]'"  # psycopg 3, which SQLAlchemy uses for postgresql://
PASSWORD_SOURCES = "PGPASSWORD or a ~/.pgpass line (host:port:database:user:password)"


def without_password(url: str) -> tuple[str, str | None]:
    """``url`` without its password (in the user part or a ``password=`` query) and the password, if any.

    The URL without the password is what a study records and what every process opens: libpq (under psycopg)
    reads the password from ``PGPASSWORD`` or ``~/.pgpass`` instead, so it never lands in a study's files,
    Ray's pickled experiment state included.
    """
    from sqlalchemy.engine import URL, make_url

    parsed = make_url(url)
    query_password = parsed.query.get("password")
    password = parsed.password or (query_password if isinstance(query_password, str) else None)
    if password is None and not any(key in parsed.query for key in SECRET_KEYS):
        return url, None
    bare = URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database,
                      {k: v for k, v in parsed.query.items() if k not in SECRET_KEYS})
    return bare.render_as_string(hide_password=False), None if password is None else str(password)


def check_storage(url: str, label: str = "--storage") -> str:
    """Refuse a storage URL that cannot work, before anything is written; returns the URL to record.

    The URL must parse, its driver must be importable, and a server database must answer (its credentials
    and the database itself are checked by connecting once). A SQLite file is not created here: its folder
    must exist and be writable. A PostgreSQL password given in the URL is taken out of the returned URL
    (:func:`keep_password` lets this process use it). ``label`` names the URL in messages (the option, or the
    study that records it).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(
            f"{label} {url!r} is not a database URL; use e.g. sqlite:////abs/path/optuna.db or "
            "postgresql://user@host:5432/dbname"
        ) from None
    name = shown(url)
    repeated = sorted(k for k, v in parsed.query.items() if isinstance(v, tuple))
    if repeated:
        raise UsageError(f"{label} {name} repeats the query key {', '.join(map(repr, repeated))}; give each key once")
    if parsed.get_backend_name() == "sqlite":
        return _check_sqlite(parsed, f"{label} {name}")
    bare, password = without_password(url)
    postgres = parsed.get_backend_name() == "postgresql"
    if password is not None and not postgres:
        raise UsageError(f"{label} {name}: a password in the URL would be written into the study; caesweep "
                         "takes passwords only for PostgreSQL (from PGPASSWORD or ~/.pgpass)")
    _connect(url, f"{label} {name}", password)
    return bare


def keep_password(url: str) -> None:
    """Let this process use the password of a checked ``--storage`` URL although the study records the URL
    without it: when the URL does not connect without its password (neither ``PGPASSWORD`` nor ``~/.pgpass``
    has it), the password goes into this process's ``PGPASSWORD`` (children inherit it; no file holds it)
    and one warning says that ``resume`` will need it there."""
    bare, password = without_password(url)
    if password is not None and not _connects(bare):
        os.environ["PGPASSWORD"] = password
        print(f"warning: the password in --storage is not stored with the study; `resume`, `confirm` and "
              f"`analysis.dashboard` will need it in {PASSWORD_SOURCES}", file=sys.stderr)


def _engine(url: str, what: str) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import NoSuchModuleError

    parsed = make_url(url)
    try:
        return create_engine(parsed, connect_args=postgres_connect_args(url) if "postgres" in url else {})
    except (NoSuchModuleError, ImportError) as exc:
        if parsed.get_backend_name() != "postgresql":
            fix = "install its driver"
        elif parsed.get_driver_name() in ("psycopg", ""):
            fix = POSTGRES_EXTRA
        else:
            fix = f"install {parsed.get_driver_name()}, or use postgresql://... with {POSTGRES_EXTRA}"
        raise UsageError(f"{what}: the database driver is not installed ({_first_line(exc)}); {fix}") from None


def _connects(url: str) -> bool:
    """Whether ``url`` connects as it is (its password, if the server wants one, from PGPASSWORD/.pgpass)."""
    from sqlalchemy.exc import SQLAlchemyError

    engine = _engine(url, "storage")
    try:
        with engine.connect():
            return True
    except (SQLAlchemyError, OSError):
        return False
    finally:
        engine.dispose()


def _connect(url: str, what: str, password: str | None) -> None:
    """Connect once; a refusal becomes one line that names the fix (the password masked)."""
    from sqlalchemy.exc import SQLAlchemyError

    engine = _engine(url, what)
    try:
        with engine.connect():
            pass
    except (SQLAlchemyError, OSError) as exc:
        cause = _first_line(getattr(exc, "orig", None) or exc)
        if password and len(password) >= 4:  # libpq does not quote passwords; this only makes sure
            cause = cause.replace(password, "***")
        raise UsageError(f"{what}: cannot connect ({cause}); {_fix(cause, url)}") from None
    finally:
        engine.dispose()


def _fix(cause: str, url: str) -> str:
    """What to do about a refused connection, from the server's (or libpq's) own words."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    low = cause.lower()
    if "password" in low or "authentication failed" in low:
        return f"check the user {parsed.username!r} and its password; give the password in {PASSWORD_SOURCES}"
    if "database" in low and "does not exist" in low:
        return (f"create the database (createdb -h {parsed.host} -p {parsed.port or 5432} -U {parsed.username} "
                f"{parsed.database}) or fix its name in the URL")
    if "role" in low and "does not exist" in low:
        return f"create the user {parsed.username!r} on the server (createuser) or fix the user in the URL"
    if "refused" in low or "timeout" in low or "translate host" in low or "no route" in low:
        return f"no database server answers at {parsed.host}:{parsed.port or 5432}; start it or fix the host and port"
    return "check that the server runs, the credentials, and that the database exists"


def _check_sqlite(parsed: Any, what: str) -> str:
    database = parsed.database
    if not database or database == ":memory:":
        raise UsageError(f"{what} keeps nothing after the sweep; give a file: sqlite:////abs/path/optuna.db")
    path = Path(database).expanduser().resolve()
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"{what}: folder {folder} does not exist; create it or choose another path")
    if path.exists() and not path.is_file():
        raise UsageError(f"{what}: {path} is not a file")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.R_OK | os.W_OK)):
        raise UsageError(f"{what}: {path} cannot be written; choose a writable path")
    return f"sqlite:///{path}"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


STUDY_ID_ATTR = "caesweep_study_id"  # in the Optuna study's user attributes: the study folder it belongs to


def _study_names(url: str) -> list[str]:
    storage = open_storage(url)
    with readable_sqlite(url):
        return [s.study_name for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)]


def refuse_taken(url: str, name: str) -> None:
    """A new study's name must be free in its storage: an Optuna study of that name belongs to another folder
    (two folders driving one Optuna study would take each other's trials)."""
    if name in _study_names(url):
        raise UsageError(f"the storage {shown(url)} already holds an Optuna study named {name!r}, another study "
                         "folder's; pick another --study name (or resume that study from its own folder)")


def claim(url: str, name: str, study_id: str, directions: Sequence[Any]) -> None:
    """Create a new study's Optuna study and mark it as this folder's (``study_id`` from its study.json)."""
    try:
        study = optuna.create_study(study_name=name, storage=open_storage(url), directions=directions)
    except optuna.exceptions.DuplicatedStudyError:
        raise UsageError(f"the storage {shown(url)} already holds an Optuna study named {name!r}, another study "
                         "folder's (created meanwhile); pick another --study name") from None
    study.set_user_attr(STUDY_ID_ATTR, study_id)


def check_owner(url: str, name: str, study_id: str | None) -> None:
    """The Optuna study a stored study continues must be its own: one marked with another folder's id is
    refused (a study from before ids is accepted, and so is one whose Optuna study does not exist yet)."""
    storage = open_storage(url)
    try:
        with readable_sqlite(url):
            study = optuna.load_study(study_name=name, storage=storage)
            owner = study.user_attrs.get(STUDY_ID_ATTR)
    except KeyError:
        return
    if study_id is not None and owner is not None and owner != study_id:
        raise UsageError(f"the Optuna study {name!r} in {shown(url)} belongs to another study folder (its id "
                         f"{owner}, this folder's {study_id}); resume that study from its own folder, or give "
                         "this one its own storage")


def release(url: str, name: str) -> None:
    """Delete a new study's Optuna study again when the study is removed before any trial started."""
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=open_storage(url))


def meta_storage(url: str | None, paths: results.StudyPaths) -> str | None:
    """What ``study.json`` records for a study's storage (the study's own file relative to its folder)."""
    if url is None or url == paths.default_storage_url():
        return results.IN_FOLDER_STORAGE if url is not None else None
    return url


NETWORK_FIX = ("use PostgreSQL (--storage postgresql://USER@HOST:5432/DB, with `pip install 'caesweep[postgres]'`) "
               "or a SQLite file on the driver's local disk (--storage sqlite:////local/path/optuna.db)")


def sqlite_on_network(url: str | None, mountinfo: str | None = None) -> tuple[Path, results.Mount] | None:
    """The SQLite file of ``url`` and the network filesystem it lies on; None for a local file, a server
    database, or where the mount table cannot be read. ``mountinfo``: a mountinfo text to read instead of
    this machine's (the path is then taken as it is, not resolved)."""
    if url is None or not url.startswith("sqlite:///"):
        return None
    path = Path(url.removeprefix("sqlite:///")).absolute()
    mount = results.filesystem_of(path.parent) if mountinfo is None else results.mount_of(path.parent, mountinfo)
    return (path, mount) if mount is not None and mount.network else None


def warn_network_sqlite(url: str | None, mountinfo: str | None = None) -> None:
    """One warning line when the study's SQLite storage lies on a network filesystem."""
    found = sqlite_on_network(url, mountinfo)
    if found is not None:
        path, mount = found
        print(f"warning: the Optuna storage {path} is SQLite on a network filesystem ({mount.fstype} at "
              f"{mount.point}), whose file locks are unreliable: {NETWORK_FIX}", file=sys.stderr)


def refuse_network_sqlite(url: str | None, nodes: int, mountinfo: str | None = None) -> None:
    """Refuse SQLite on a network filesystem for a sweep on a cluster of several nodes: its study folder is
    meant to be reached from other machines (resume, dashboards, reports), where SQLite's locks fail."""
    found = sqlite_on_network(url, mountinfo)
    if found is not None and nodes > 1:
        path, mount = found
        raise UsageError(f"the Optuna storage {path} would be SQLite on a network filesystem ({mount.fstype} at "
                         f"{mount.point}) for a cluster of {nodes} nodes; {NETWORK_FIX}")
