"""Spaces the tests share: ``TUNED`` has continuous axes (a log-int latent size and a log-float learning rate)
next to a categorical one, which no shipped space needs but the sampling and resolving code must handle."""

from __future__ import annotations

from pathlib import Path

TUNED = str(Path(__file__).parent / "data" / "tuned.yaml")
