"""A real PostgreSQL server for tests: initdb in a temporary folder, on a free loopback port, stopped after.

Debian's ``postgresql`` package (``apt-get install postgresql``; ``.ci/run`` installs it) provides the
binaries. initdb and the server refuse to run as root, so under root they run as the ``postgres`` system
user on a folder it owns. The server listens on 127.0.0.1 only (password authentication, scram-sha-256)
and on a unix socket in its folder (trust, used once to create the test role and database).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER = "caesweep"
PASSWORD = "Zq7-hunter2-secret"  # what the leak test looks for in every file of a study
DATABASE = "sweeps"


def bindir() -> Path | None:
    """The folder of initdb/pg_ctl: ``pg_config --bindir``, else Debian's /usr/lib/postgresql/*/bin."""
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if folder and (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    folder: Path
    port: int
    bindir: Path

    def url(self, password: bool = False, database: str = DATABASE, user: str = USER) -> str:
        secret = f":{PASSWORD}" if password else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{database}"

    def pgpass_env(self) -> dict[str, str]:
        """What a user sets so that URLs without the password connect."""
        return {"PGPASSWORD": PASSWORD}


def _as_owner(cmd: list[str]) -> list[str]:
    """Run as the postgres system user when we are root (initdb and postgres refuse root)."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], cwd: Path) -> None:
    out = subprocess.run(_as_owner(cmd), cwd=cwd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stdout[-1500:]} {out.stderr[-1500:]}")


def start() -> Server:
    """initdb, start the server on a free port and create the test role (with a password) and database."""
    import psycopg

    binaries = bindir()
    if binaries is None:
        raise RuntimeError("PostgreSQL's initdb/pg_ctl not found (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="cae-pg-"))  # short: the unix socket path must fit 107 bytes
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    _run([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
          "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8"], cwd=folder)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
    _run([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-o", options, "-w",
          "-t", "120", "start"], cwd=folder)
    server = Server(folder, port, binaries)
    try:
        with psycopg.connect(host=str(folder), port=port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
            conn.execute(f"CREATE DATABASE {DATABASE} OWNER {USER}")
    except BaseException:
        stop(server)
        raise
    return server


def stop(server: Server) -> None:
    """Stop the server at once (its data is thrown away) and remove its folder."""
    try:
        _run([str(server.bindir / "pg_ctl"), "-D", str(server.folder / "data"), "-m", "immediate", "stop"],
             cwd=server.folder)
    finally:
        shutil.rmtree(server.folder, ignore_errors=True)
