"""Credentials go only where the user sends them: a server that asks for the password in clear text gets nothing,
secrets in a URL's query are masked and never recorded, a URL that repeats a key is refused, and a stored study
names its servers only to be told to name them again."""

from __future__ import annotations

import json
import socket
import struct
import threading
from pathlib import Path

import pytest
import sqlalchemy

from cae.errors import UsageError
from search.cli import main
from search.storage import check_storage, postgres_connect_args, shown, without_password
from tests.conftest import in_process
from tests.search.test_cli_errors import assert_user_error, snapshot


class CleartextServer:
    """A loopback server that speaks just enough PostgreSQL to ask for the password in clear text, and records
    every message the client sends after that (a ``p`` message would be the password)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.messages: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(20)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            while True:  # SSL and GSS encryption requests first: answered "no"
                length, code = struct.unpack("!II", _exactly(conn, 8))
                if code in (80877103, 80877104):
                    conn.sendall(b"N")
                    continue
                _exactly(conn, length - 8)  # the startup message's parameters
                break
            conn.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
            try:
                while data := conn.recv(4096):
                    self.messages.append(data)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=10)


def _exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


def test_a_server_asking_for_a_cleartext_password_gets_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("psycopg")
    monkeypatch.setenv("PGPASSWORD", "Zq7-never-sent")
    server = CleartextServer()
    url = f"postgresql+psycopg://someone@127.0.0.1:{server.port}/db"
    engine = sqlalchemy.create_engine(url, connect_args=postgres_connect_args(url))
    try:
        with pytest.raises(sqlalchemy.exc.OperationalError) as refused:
            engine.connect().close()
    finally:
        engine.dispose()
        server.close()
    assert not any(b"Zq7-never-sent" in m or m.startswith(b"p") for m in server.messages), server.messages
    assert "password" in str(refused.value) or "authentication" in str(refused.value)  # libpq refused, no time-out


def test_secrets_in_the_query_are_masked_and_never_recorded() -> None:
    url = "postgresql://u:pw1@db:5432/x?password=pw2&sslpassword=pw3&sslmode=require"
    assert shown(url) == "postgresql://u:***@db:5432/x?password=***&sslmode=require&sslpassword=***"
    bare, password = without_password(url)
    assert bare == "postgresql://u@db:5432/x?sslmode=require" and password == "pw1"
    with pytest.raises(UsageError, match=r"repeats the query key 'password'; give each key once") as refused:
        check_storage("postgresql://u@db/x?password=a&password=b")
    assert "=a" not in str(refused.value) and "=b" not in str(refused.value)


def test_a_stored_study_joins_no_cluster_and_opens_no_storage_on_its_own_word(tmp_path: Path) -> None:
    """A handed study.json names a PostgreSQL server and a Ray address: resume and confirm contact neither, and say
    how to name them (a listener on loopback records any contact)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    folder = tmp_path / "handed"
    folder.mkdir()
    options = {"study": "handed", "space": "quick", "root": str(tmp_path), "address": f"127.0.0.1:{port}",
               "storage": f"postgresql://victim@127.0.0.1:{port}/db"}
    meta = {"name": "handed", "engine": "ray", "status": "interrupted", "samples": 2, "runs": ["run-1"],
            "storage": options["storage"], "options": options, "space": {"name": "quick"}}
    (folder / "study.json").write_text(json.dumps(meta))
    before = snapshot(folder)
    for command in (("resume",), ("confirm", "--top", "1", "--repeats", "1")):
        proc = in_process(main, *command, "--study", "handed", "--root", str(tmp_path))
        assert_user_error(proc, "records the Optuna storage", "--storage postgresql://victim@127.0.0.1")
    proc = in_process(main, "resume", "--study", "handed", "--root", str(tmp_path), "--storage",
                      str(tmp_path / "nothing.db"))
    assert proc.returncode == 2
    with pytest.raises(TimeoutError):
        listener.accept()  # nothing connected
    listener.close()
    assert snapshot(folder) == before
