"""The Optuna storage of a study: opened, checked before a study exists, and recorded relative to the study.

A study's own SQLite file is recorded in ``study.json`` as the relative URL ``sqlite:///optuna.db``, which
caesweep resolves against the study folder wherever that folder is now, so a copied or moved study uses its
own copy and never the original's. An external ``--storage`` URL (PostgreSQL, a SQLite file elsewhere) is
recorded as given (a relative SQLite path made absolute, so ``resume`` from another folder finds it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

import results
from cae.errors import UsageError

_checked_urls: set[str] = set()  # storages whose schema version this process has already checked


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Optuna RDB storage for any SQLAlchemy URL; SQLite waits for locks instead of failing.

    The schema-version check (alembic reading its revision scripts: ~40 ms, opened on every table rebuild
    during a sweep) runs on the first opening of each URL per process only.
    """
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    checked = url in _checked_urls
    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, skip_compatibility_check=checked)
    _checked_urls.add(url)
    return storage


def shown(url: str) -> str:
    """The URL as it may be printed: any password masked."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1]


def check_storage(url: str) -> str:
    """Refuse a storage URL that cannot work, before anything is written; returns the URL to record.

    The URL must parse, its driver must be importable, and a server database must answer (its credentials
    and the database itself are checked by connecting once). A SQLite file is not created here: its folder
    must exist and be writable.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(
            f"--storage {url!r} is not a database URL; use e.g. sqlite:////abs/path/optuna.db or "
            "postgresql://user@host:5432/dbname"
        ) from None
    name = shown(url)
    if parsed.get_backend_name() == "sqlite":
        return _check_sqlite(parsed, name)
    try:
        engine = create_engine(parsed, connect_args={"connect_timeout": 10} if "postgres" in url else {})
    except (NoSuchModuleError, ImportError) as exc:
        fix = "pip install 'psycopg[binary]'" if parsed.get_backend_name() == "postgresql" else "install its driver"
        raise UsageError(
            f"--storage {name}: the database driver is not installed ({_first_line(exc)}); {fix}"
        ) from None
    try:
        with engine.connect():
            pass
    except (SQLAlchemyError, OSError) as exc:
        cause = getattr(exc, "orig", None) or exc
        raise UsageError(
            f"--storage {name}: cannot connect ({_first_line(cause)}); check that the server runs, the "
            "credentials, and that the database exists"
        ) from None
    finally:
        engine.dispose()
    return url


def _check_sqlite(parsed: Any, name: str) -> str:
    database = parsed.database
    if not database or database == ":memory:":
        raise UsageError(f"--storage {name} keeps nothing after the sweep; give a file: sqlite:////abs/path/optuna.db")
    path = Path(database).expanduser().resolve()
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"--storage {name}: folder {folder} does not exist; create it or choose another path")
    if path.exists() and not path.is_file():
        raise UsageError(f"--storage {name}: {path} is not a file")
    import os

    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.R_OK | os.W_OK)):
        raise UsageError(f"--storage {name}: {path} cannot be written; choose a writable path")
    return f"sqlite:///{path}"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def meta_storage(url: str | None, paths: results.StudyPaths) -> str | None:
    """What ``study.json`` records for a study's storage (the study's own file relative to its folder)."""
    if url is None or url == paths.default_storage_url():
        return results.IN_FOLDER_STORAGE if url is not None else None
    return url
