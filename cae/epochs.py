"""Which epoch a run keeps: the rule early stopping and the best-weights restore follow, without TensorFlow.

A run keeps the epoch whose monitored validation metric (``TrainConfig.monitor``, lower is better after
:func:`as_loss`) improved last by more than :data:`MIN_DELTA`; its validation metrics are the ones reported
beside the test scores (:func:`at_best_epoch`). :mod:`cae.training` applies the rule epoch by epoch as it
trains; a replayed curve (a tabular benchmark) applies it to the whole curve with :func:`kept_epoch`, so a
replayed trial keeps the same epoch a real one would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from cae.config import VAL_METRICS, monitor_mode

MIN_DELTA = 1e-6  # a change of the monitored metric smaller than this is not an improvement


def as_loss(monitor: str, value: float) -> float:
    """The monitored metric as a loss, lower is better (PSNR and SSIM negated): how Progress.best_val holds it."""
    return -value if monitor_mode(monitor) == "max" else value


def kept_epoch(history: Sequence[dict[str, float]], monitor: str) -> int:
    """The epoch (1-based) a run that has trained ``history`` keeps, by the rule training applies per epoch;
    0 before any epoch."""
    best, kept = math.inf, 0
    for record in history:
        value = as_loss(monitor, float(record[monitor]))
        if value < best - MIN_DELTA:
            best, kept = value, int(record["epoch"])
    return kept


def at_best_epoch(history: Sequence[dict[str, float]], best_epoch: int) -> dict[str, float]:
    """The validation metrics (:data:`VAL_METRICS`) of epoch ``best_epoch``: the epoch whose weights early
    stopping keeps and the test scores come from. NaN for each metric when that epoch is not in ``history``
    (``best_epoch`` 0: no epoch has ended)."""
    record = next((r for r in history if int(r["epoch"]) == best_epoch), {})
    return {key: float(record.get(key, math.nan)) for key in VAL_METRICS}
