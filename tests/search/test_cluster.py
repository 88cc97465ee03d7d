"""A real two-node Ray cluster on this machine: a node lost mid-trial, its trial continues on the other node.

(A sweep submitted with --address to a two-node cluster, trials on both nodes, a killed driver resumed: the
cluster guide, docs/cluster.md, run as written by ``test_cluster_guide.py``.)"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import read_study_table
from tests.search.conftest import REPO, SYNTHETIC, search_popen, sweep_env

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(*args: str, log: Path) -> subprocess.Popen:
    """``ray start ... --block`` in its own process group, so stopping it stops every Ray process it began."""
    # Detect a lost node within seconds instead of Ray's default of about half a minute.
    env = {**sweep_env(), "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}
    return subprocess.Popen(
        [RAY, "start", "--block", "--disable-usage-stats", "--num-cpus", "1", *args],
        cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def stop(proc: subprocess.Popen) -> None:
    """SIGKILL to the node's process group: Ray's daemons ignore a lone SIGTERM (waiting for them cost 10 s a
    node), and this node's data is thrown away with it."""
    if proc.poll() is None:
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


@dataclass
class Cluster:
    address: str
    worker: subprocess.Popen


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Head and worker node, 1 CPU each (the node-loss test kills the worker)."""
    tmp_path = tmp_path_factory.mktemp("cluster")
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
        yield Cluster(address, nodes[1])
    finally:
        for proc in reversed(nodes):
            stop(proc)


SPACE = """\
samples: 2
fixed: {task: reconstruct, data: embedded, image_size: 16, max_epochs: 4, batch_size: 16, kernel_size: 3,
        filters: "4-8", latent_dim: 16}
params:
  lr: {choices: [1.0e-3, 2.0e-3], role: nuisance}
"""


def test_lost_worker_node_trials_continue_on_the_other(tmp_path: Path, cluster: Cluster) -> None:
    """The driver is a real ``python -m search`` process; its trials report and checkpoint each epoch like real
    ones, two seconds an epoch, without training: what is tested is Ray's nodes, the trial's checkpoint and its
    move to the surviving node."""
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    root = tmp_path / "results"
    proc = search_popen(
        "run", "--space", str(space), "--study", "n1", "--root", str(root), "--address", cluster.address,
        "--scheduler", "none", "--sampler", "grid", "--limit", "48", "--concurrency", "2", log=tmp_path / "run.log",
        module=SYNTHETIC, env={"SYNTHETIC_EPOCH_S": "2"},
    )
    deadline, nodes = time.time() + 240, set()
    while time.time() < deadline and len(nodes) < 2:
        assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
        # two epochs reported on each node: the first epoch's checkpoint is registered by then (the driver writes
        # a result line before it registers that epoch's checkpoint)
        nodes = {json.loads(f.read_text().splitlines()[0])["node"]
                 for f in root.glob("n1/ray/run-1/trial_*/result.json") if len(f.read_text().splitlines()) >= 2}
        time.sleep(0.3)
    assert len(nodes) == 2, "both trials should have started, one per node"
    os.killpg(cluster.worker.pid, signal.SIGKILL)  # the worker node is lost, mid-trial
    assert proc.wait(timeout=400) == 0, (tmp_path / "run.log").read_text()[-3000:]

    trials = read_study_table(root / "n1" / "trials.csv")
    assert len(trials) == 2 and (trials["status"] == "COMPLETE").all() and (trials["epochs"] == 4).all()
    assert trials["node"].nunique() == 1  # both finished on the surviving node
    for f in root.glob("n1/ray/run-1/trial_*/result.json"):
        epochs = [json.loads(line)["epoch"] for line in f.read_text().splitlines()]
        assert 1 not in epochs[1:], epochs  # the moved trial continued from its checkpoint
