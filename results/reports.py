"""What a trial reports, defined once: an epoch, the end (final), or a failure.

Every trainable writes these records: caesweep's training (:mod:`search.trial`), a tabular benchmark's replay
(:mod:`benchmarks.tabular`) and the synthetic trainable (:mod:`benchmarks.synthetic`). ``to_dict`` is what a
trainable hands to ``tune.report``, and what Ray writes, one JSON line per report (with keys of its own such as
``timestamp`` and ``pid``), into the trial's ``result.json``. :func:`read` turns such a line back into a record;
it is the one reader: the searcher (what Optuna is told), the study's tables (:mod:`search.records`) and,
through them, the report.

The key names, each once:

- every epoch: ``epoch`` (1-based), the epoch's own metrics (:data:`RECORD_KEYS`, the columns of
  ``history.csv``), ``kept_<metric>`` for each validation metric of the epoch the run keeps so far (the epoch
  early stopping keeps, by the rule of :mod:`cae.epochs`), the costs (:data:`COST_KEYS`), ``node`` and
  ``policy`` (the Keras dtype policy the model trains in, :mod:`cae.precision`; absent for a trainable without
  one);
- the end: the last epoch's keys plus ``final`` (True), the test scores and baselines (:data:`SCORE_KEYS`,
  absent when the run was too short to be scored), ``epochs``, ``best_epoch``, ``stopped_early``,
  ``finished_at``, ``architecture`` and ``eval_seconds``;
- a failure: ``failed`` (True), ``error`` (one line), ``node`` and, for an exception, ``traceback``.

A trial that ends without its final report was stopped by the scheduler (pruned).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cae.config import VAL_METRICS
from results.tables import HISTORY_COLUMNS, TRIAL_COLUMNS

EPOCH = "epoch"
FINAL = "final"
FAILED = "failed"
ERROR = "error"
NODE = "node"
POLICY = "policy"
TRACEBACK = "traceback"
KEPT = "kept_"  # + a validation metric: its value at the epoch the run keeps
RECORD_KEYS = tuple(k for k in HISTORY_COLUMNS if k not in ("trial_id", EPOCH))  # an epoch's own metrics
COST_KEYS = ("params", "train_seconds", "images_per_second", "setup_seconds", "validation_seconds",
             "checkpoint_seconds")
# The test scores and their baselines (the trial table's columns from test_mse to pca_matched).
SCORE_KEYS = TRIAL_COLUMNS[TRIAL_COLUMNS.index("test_mse"): TRIAL_COLUMNS.index("pca_matched") + 1]
_END_KEYS = ("epochs", "best_epoch", "stopped_early", "finished_at", "architecture", "eval_seconds")
# Studies recorded before trials reported kept_* had only these two, the best of each over the epochs.
_LEGACY_KEPT = {"best_val_mse": "val_mse", "best_val_loss": "val_loss"}


@dataclass(frozen=True)
class EpochReport:
    """One epoch of a trial: its metrics, the validation metrics of the epoch kept so far, the costs so far."""

    epoch: int
    record: Mapping[str, float]  # the epoch's own metrics (RECORD_KEYS)
    kept: Mapping[str, float] = field(default_factory=dict)  # VAL_METRICS at the epoch kept so far
    costs: Mapping[str, float | None] = field(default_factory=dict)  # COST_KEYS (None: not measured)
    node: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # anything a trainable adds (e.g. ``replayed``)
    policy: str | None = None  # the Keras dtype policy it trains in (float32, mixed_bfloat16, mixed_float16)

    def to_dict(self) -> dict[str, Any]:
        out = {**self.extra, **self.record, EPOCH: self.epoch, **{KEPT + k: v for k, v in self.kept.items()},
               **self.costs, NODE: self.node}
        if self.policy is not None:
            out[POLICY] = self.policy
        return out


@dataclass(frozen=True)
class FinalReport:
    """A trial's end: its last epoch and the scores of the model it keeps."""

    last: EpochReport
    epochs: int  # epochs trained
    best_epoch: int  # the epoch kept (its weights are the ones scored)
    scores: Mapping[str, Any] = field(default_factory=dict)  # SCORE_KEYS; empty for a run too short to score
    stopped_early: bool = False
    finished_at: float | None = None
    architecture: str | None = None
    eval_seconds: float | None = None

    @property
    def node(self) -> str | None:
        return self.last.node

    def to_dict(self) -> dict[str, Any]:
        end = {"epochs": self.epochs, "best_epoch": self.best_epoch, "stopped_early": self.stopped_early,
               "finished_at": self.finished_at, "architecture": self.architecture, "eval_seconds": self.eval_seconds}
        return {**self.last.to_dict(), **self.scores, FINAL: True, **{k: v for k, v in end.items() if v is not None}}

    def objective(self, metric: str) -> float | None:
        """The value a sampler is told for ``metric``: a validation metric at the kept epoch (the model that is
        tested), a cost as it stands at the end; None when missing or not finite."""
        value = self.last.kept.get(metric) if metric in VAL_METRICS else self.last.costs.get(metric)
        if value is None or not math.isfinite(float(value)):
            return None
        return float(value)


@dataclass(frozen=True)
class FailedReport:
    """A trial that failed: a diverged loss or an exception, with the reason in one line."""

    error: str
    node: str | None = None
    traceback: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {**self.extra, FAILED: True, ERROR: self.error, NODE: self.node}
        if self.traceback is not None:
            out[TRACEBACK] = self.traceback
        return out


Report = EpochReport | FinalReport | FailedReport


def epoch_of(report: Report | None) -> EpochReport | None:
    """The epoch a report describes: an epoch's own, a final report's last; None for a failure (or nothing)."""
    if isinstance(report, FinalReport):
        return report.last
    return report if isinstance(report, EpochReport) else None


def read(line: Mapping[str, Any] | None) -> Report | None:
    """The record a ``result.json`` line (or a result Ray hands a callback) holds; None for anything else (a
    line without an epoch, Ray's own bookkeeping)."""
    if not line:
        return None
    if line.get(FAILED):
        return FailedReport(error=str(line.get(ERROR) or "the trial failed"), node=line.get(NODE),
                            traceback=line.get(TRACEBACK))
    if EPOCH not in line:
        return None
    kept = {k: line[KEPT + k] for k in VAL_METRICS if KEPT + k in line}
    if not kept:
        kept = {metric: line[key] for key, metric in _LEGACY_KEPT.items() if key in line}
    epoch = EpochReport(
        epoch=int(line[EPOCH]),
        record={k: line[k] for k in RECORD_KEYS if k in line},
        kept=kept,
        costs={k: line[k] for k in COST_KEYS if k in line},
        node=line.get(NODE),
        policy=line[POLICY] if isinstance(line.get(POLICY), str) else None,
    )
    if not line.get(FINAL):
        return epoch
    return FinalReport(
        last=epoch,
        epochs=int(line.get("epochs", epoch.epoch)),
        best_epoch=int(line.get("best_epoch", 0)),
        scores={k: line[k] for k in SCORE_KEYS if k in line},
        stopped_early=bool(line.get("stopped_early", False)),
        finished_at=line.get("finished_at"),
        architecture=line.get("architecture"),
        eval_seconds=line.get("eval_seconds"),
    )
