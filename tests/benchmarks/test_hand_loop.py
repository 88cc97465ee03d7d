"""The overhead benchmark's peer, a hand-written Ray Tune + OptunaSearch loop, runs and scores every trial (its
timings are the benchmark's business: ``python -m benchmarks.hand_loop compare``)."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import pytest

from benchmarks import hand_loop

pytestmark = pytest.mark.slow


def test_the_hand_loop_trains_and_tests_every_trial(tmp_path: Path, private_ray: None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    result = hand_loop.run(trials=1, epochs=2, limit=16, storage=tmp_path, cpus=1)
    assert signal.getsignal(signal.SIGINT) is handler  # Tune's own Ctrl-C handler does not outlive the run
    assert result["trials"] == 1 and result["fit_seconds"] > 0
    assert math.isfinite(result["best_val_mse"]) and result["best_val_mse"] > 0
    assert (tmp_path / "hand").is_dir()  # Ray Tune's own experiment folder, where the user put it
