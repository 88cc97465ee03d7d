"""Fixtures for sweep tests: a tiny space, and a helper to run the search CLI as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

TINY_SPACE = """\
description: a few seconds per trial on 16x16 tiles
samples: 4
fixed:
  task: reconstruct
  data: embedded
  image_size: 16
  max_epochs: 3
  batch_size: 16
  kernel_size: 3
  patience: 5
params:
  filters: {choices: ["4-8", "8-16"], role: scientific}
  latent_dim: {choices: [4, 16], role: scientific}
  lr: {choices: [1.0e-5, 3.0e-3], role: nuisance}
"""


def sweep_env(changes: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment of a test's sweep: a private Ray; ``changes`` set variables (None: removes one)."""
    env = dict(os.environ)
    env.update({"RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1", "RAY_DEDUP_LOGS": "0"})
    env.pop("RAY_ADDRESS", None)
    for key, value in (changes or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@pytest.fixture
def tiny_space(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


SYNTHETIC = "tests.search.synthetic_driver"  # python -m search whose trials train nothing (see that module)


def search_cli(
    *args: str, timeout: float = 300, env: Mapping[str, str | None] | None = None, module: str = "search",
    **kwargs
) -> subprocess.CompletedProcess:
    """Run ``python -m search ARGS`` to completion (``env``: changes to :func:`sweep_env`; ``module``: SYNTHETIC
    for the same CLI with synthetic trials)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO, env=sweep_env(env), capture_output=True, text=True, timeout=timeout, **kwargs,
    )


def search_popen(
    *args: str, log: Path, env: Mapping[str, str | None] | None = None, module: str = "search"
) -> subprocess.Popen:
    """Start ``python -m search ARGS`` in its own process group, output to ``log`` (``module``: as for
    :func:`search_cli`)."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO, env=sweep_env(env), stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session (skipped where PostgreSQL or psycopg is not installed)."""
    from tests.search import postgres as pg

    if pg.bindir() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    pytest.importorskip("psycopg", reason="pip install 'caesweep[postgres]'")
    server = pg.start()
    try:
        yield server
    finally:
        pg.stop(server)

