"""A real two-node Ray cluster on this machine: a sweep submitted with --address runs trials on both nodes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.search.conftest import REPO, search_cli, sweep_env

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(*args: str, log: Path) -> subprocess.Popen:
    """``ray start ... --block`` in its own process group, so stopping it stops every Ray process it began."""
    return subprocess.Popen(
        [RAY, "start", "--block", "--disable-usage-stats", "--num-cpus", "1", *args],
        cwd=REPO, env=sweep_env(), stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def alive_nodes(address: str) -> int:
    code = (
        f"import ray; ray.init(address='{address}', logging_level='ERROR'); "
        "print(sum(n['Alive'] for n in ray.nodes()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=sweep_env(), capture_output=True, text=True, timeout=60
    )
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0


@pytest.fixture
def two_node_cluster(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = start_node("--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                      f"--ray-client-server-port={free_port()}", log=tmp_path / "head.log")
    nodes = [head]
    try:
        deadline = time.time() + 90
        while alive_nodes(address) < 1:
            assert time.time() < deadline and head.poll() is None, (tmp_path / "head.log").read_text()[-2000:]
            time.sleep(1)
        nodes.append(start_node(f"--address={address}", "--node-ip-address=127.0.0.1", log=tmp_path / "worker.log"))
        while alive_nodes(address) < 2:
            assert time.time() < deadline, (tmp_path / "worker.log").read_text()[-2000:]
            time.sleep(1)
        yield address
    finally:
        for proc in reversed(nodes):
            stop(proc)


def test_sweep_runs_on_both_nodes(tmp_path: Path, tiny_space: Path, two_node_cluster: str) -> None:
    root = tmp_path / "results"
    proc = search_cli(
        "run", "--space", str(tiny_space), "--study", "c1", "--root", str(root), "--samples", "4",
        "--scheduler", "none", "--max-epochs", "2", "--limit", "48", "--address", two_node_cluster,
        "--cpus-per-trial", "1", "--concurrency", "2",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials = pd.read_csv(root / "c1" / "trials.csv")
    assert len(trials) == 4 and (trials["status"] == "COMPLETE").all()
    assert trials["node"].nunique() == 2, trials["node"].tolist()
