"""The "Sweeps on a cluster" guide (docs/cluster.md), run as written: its `# head:`, `# worker:`, `# submit:`,
`# resume:` and `# after:` blocks on a two-node Ray cluster on this machine (loopback, free ports, a Ray temp
folder of its own) with a real PostgreSQL server; the driver is SIGKILLed mid-sweep (a lost head job) and the
guide's resume finishes the study. The SLURM script of the guide must at least parse.

The cluster's processes are stopped through the sessions of the blocks that started them (`ray start` leaves
its daemons, and Ray its workers, in the caller's session), never with `ray stop`, which would stop every Ray
on the machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import read_study_table
from tests.search.conftest import REPO, TINY_SPACE, sweep_env
from tests.search.postgres import PASSWORD, Server
from tests.search.test_cluster import alive_nodes, free_port

pytestmark = pytest.mark.slow
SLURM = REPO / "examples" / "slurm" / "caesweep.sbatch"
GUIDE = REPO / "docs" / "cluster.md"
STEPS = ("head", "worker", "submit", "resume", "after")


def guide_blocks() -> dict[str, str]:
    """The guide's runnable blocks by their first line's name (``# head: ...`` -> ``head``)."""
    guide = GUIDE.read_text()
    assert guide.startswith("# Sweeps on a cluster\n"), GUIDE
    blocks = {}
    for block in re.findall(r"```bash\n(.*?)```", guide, re.S):
        named = re.match(r"# (\w+):", block)
        if named and named.group(1) in STEPS:
            blocks[named.group(1)] = block
    return blocks


def start_block(block: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Run a block with bash in a process group of its own (what it starts stays in that group)."""
    return subprocess.Popen(["bash", "-euo", "pipefail", "-c", block], cwd=REPO, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def run_block(block: str, env: dict[str, str], log: Path, groups: list[int], timeout: float = 400) -> str:
    proc = start_block(block, env, log)
    groups.append(proc.pid)
    code = proc.wait(timeout=timeout)
    assert code == 0, f"{block}\n{log.read_text()[-3000:]}"
    return log.read_text()


def session_members(session: int) -> list[int]:
    """The processes of a session (a block runs in its own: its pid is the session's id). Ray's worker
    processes get process groups of their own, but stay in the session of the node that started them."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, session
            if int(fields[3]) == session:
                members.append(int(stat.parent.name))
    return members


def stop_groups(groups: list[int]) -> None:
    """SIGTERM, then SIGKILL, to every process of the sessions the blocks started (Ray's daemons ignore a
    lone SIGTERM); never `ray stop`, which stops every Ray on the machine."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for session in reversed(groups):
            for pid in session_members(session):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
        time.sleep(2)


@pytest.fixture
def guide_env(postgres: Server, tmp_path: Path) -> Iterator[dict[str, str]]:
    space = tmp_path / "tiny.yaml"
    # The guide's commands give no --limit: the space holds it (48 images per split, not all 5,707).
    space.write_text(TINY_SPACE.replace("\nparams:", "\n  limit: 48\nparams:", 1))
    ray_tmp = tempfile.mkdtemp(prefix="cae-ray-")  # short: Ray's socket paths must fit 107 bytes
    env = sweep_env({"PGPASSWORD": PASSWORD, "PGPASSFILE": str(tmp_path / "no-pgpass")})
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # this python, its `ray`
        "PYTHONPATH": str(REPO), "RAY_TMPDIR": ray_tmp,
        "HEAD_IP": "127.0.0.1", "NODE_IP": "127.0.0.1", "HEAD_PORT": str(free_port()),
        "CLIENT_PORT": str(free_port()), "CPUS": "1", "ROOT": str(tmp_path / "shared"), "PG_URL": postgres.url(),
        "SPACE": str(space), "STUDY": "guide1", "SAMPLES": "3",
        # Detect the head's loss within seconds (Ray's default is about half a minute).
        "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3",
    })
    yield env
    subprocess.run(["rm", "-rf", ray_tmp], check=False)


def test_the_guide_runs_as_written(guide_env: dict[str, str], tmp_path: Path) -> None:
    blocks, env = guide_blocks(), guide_env
    assert set(blocks) == set(STEPS), sorted(blocks)
    address, groups = f"{env['HEAD_IP']}:{env['HEAD_PORT']}", []
    try:
        run_block(blocks["head"], env, tmp_path / "head.log", groups)
        run_block(blocks["worker"], env, tmp_path / "worker.log", groups)
        deadline = time.time() + 120
        while alive_nodes(address) < 2:
            assert time.time() < deadline, (tmp_path / "worker.log").read_text()[-2000:]
            time.sleep(1)

        folder = Path(env["ROOT"]) / env["STUDY"]
        submit = start_block(blocks["submit"], env, tmp_path / "submit.log")
        deadline = time.time() + 300
        while submit.poll() is None and not any(
            f.read_text().strip() for f in folder.glob("ray/run-*/trial_*/result.json")
        ):
            assert time.time() < deadline, (tmp_path / "submit.log").read_text()[-3000:]
            time.sleep(0.3)
        with contextlib.suppress(ProcessLookupError):  # it may have finished already: resume must hold too
            os.killpg(submit.pid, signal.SIGKILL)  # the driver is lost mid-sweep (the cluster stays up)
        submit.wait()

        run_block(blocks["resume"], env, tmp_path / "resume.log", groups)
        trials = read_study_table(folder / "trials.csv")
        assert len(trials) == 3 and trials["status"].isin(["COMPLETE", "PRUNED"]).all()  # ASHA may stop some
        assert (trials["status"] == "COMPLETE").any() and trials["trial_id"].is_unique
        assert trials["node"].nunique() == 2  # two single-CPU nodes ran the two concurrent trials
        after = run_block(blocks["after"], env, tmp_path / "after.log", groups)
        assert re.search(r"^\s*guide1\s+done\b", after, re.M), after[-2000:]
        assert (folder / "report" / "report.md").is_file()
        assert PASSWORD.encode() not in b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    finally:
        stop_groups(groups)


def test_the_slurm_script_parses_and_continues_an_existing_study() -> None:
    subprocess.run(["bash", "-n", str(SLURM)], check=True)
    text = SLURM.read_text()
    assert re.search(r"^#SBATCH --signal=B:TERM@\d+$", text, re.M)
    assert 'if [ -f "$ROOT/$STUDY/study.json" ]' in text and "sweep=(resume" in text and "sweep=(run" in text
