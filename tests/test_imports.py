"""Importing caesweep changes nothing in the process: no environment variable, no log level, no log filter. Ray
Tune's settings and Optuna's log level are set for the length of a run and restored after
(``search.ray_engine.tune_settings``), so runs and tests in one process start from the same state."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import optuna
import pytest

from search.ray_engine import FORCED_SETTINGS, TUNE_SETTINGS, tune_settings
from tests.fresh_process import REPO

PROBE = """
import json, logging, os
import optuna, ray, ray.tune  # what the libraries themselves set on import is theirs
names = ("ray.tune.tune", "ray.tune.analysis.experiment_analysis", "optuna")
def state():
    return {"env": dict(os.environ), "optuna": optuna.logging.get_verbosity(),
            "filters": {n: len(logging.getLogger(n).filters) for n in names}}
before = state()
import analysis.report, benchmarks.cli, search.cli, search.commands, search.ray_engine, search.records
import search.searcher, search.sweep, search.trial, spaces, results
after = state()
print(json.dumps({"before": before, "after": after}))
"""


def test_importing_caesweep_sets_nothing() -> None:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(PROBE)], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if not k.startswith("TUNE_")})
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["after"] == seen["before"]


def test_tune_settings_hold_for_a_run_only_and_a_users_own_value_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [*TUNE_SETTINGS, *FORCED_SETTINGS, "RAY_AIR_NEW_OUTPUT", "TUNE_GLOBAL_CHECKPOINT_S"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TUNE_DISABLE_STRICT_METRIC_CHECKING", "0")  # the user's: kept
    monkeypatch.setenv("TUNE_DISABLE_SIGINT_HANDLER", "0")  # caesweep's signal handling needs Tune's off: forced
    before, level = dict(os.environ), optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.INFO)
    tune_logger = logging.getLogger("ray.tune.tune")
    filters = list(tune_logger.filters)
    with tune_settings(SimpleNamespace(verbose=False)):  # type: ignore[arg-type]
        assert os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] == "0"
        assert os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1"
        assert os.environ["TUNE_DISABLE_SIGINT_HANDLER"] == "1" and os.environ["RAY_AIR_NEW_OUTPUT"] == "0"
        assert optuna.logging.get_verbosity() == optuna.logging.WARNING
        assert len(tune_logger.filters) == len(filters) + 1
        os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = "3"  # as _fit sets it for a run
    assert dict(os.environ) == before and tune_logger.filters == filters
    assert optuna.logging.get_verbosity() == logging.INFO
    optuna.logging.set_verbosity(level)
