"""A known-answer problem for the search machinery: the Branin function, minimum 0.397887.

Branin on x1 in [-5, 10], x2 in [0, 15] has three global minimisers, (-pi, 12.275), (pi, 2.275) and
(9.42478, 2.475), all with value 0.397887. :func:`best_so_far` runs one of the suite's samplers (built by
:func:`search.samplers.make_sampler`, exactly as a sweep builds it) on it through Optuna alone, no Ray and no
training, so samplers can be compared in seconds: e.g. that TPE beats random search on average at an equal
budget. :func:`synthetic_trainable` is the same idea for whole sweeps: a Ray trainable that reports like a real
trial, with a known loss, and trains nothing.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from results.reports import EpochReport, FinalReport
from search.samplers import make_sampler

OPTIMUM = 0.397887
DOMAIN = {"x1": (-5.0, 10.0), "x2": (0.0, 15.0)}
MINIMIZERS = ((-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475))


def branin(x1: float, x2: float) -> float:
    """The Branin-Hoo function with its usual constants."""
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


def objective(trial: optuna.Trial) -> float:
    return branin(*(trial.suggest_float(name, low, high) for name, (low, high) in DOMAIN.items()))


def best_so_far(sampler: str, seed: int, trials: int) -> np.ndarray:
    """The best Branin value after each of ``trials`` evaluations by the named sampler, seeded with ``seed``."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per trial otherwise
    try:
        with warnings.catch_warnings():  # TPE's multivariate/group options are flagged experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(direction="minimize", sampler=make_sampler(sampler, seed))
            study.optimize(objective, n_trials=trials)
    finally:
        optuna.logging.set_verbosity(previous)
    return np.minimum.accumulate(np.array([t.value for t in study.trials], dtype=float))


# -- a trainable with a known answer --------------------------------------------------------------------------


def known_loss(flat: Mapping[str, Any]) -> float:
    """A trial's loss as a known function of its configuration: smallest at learning rate 1e-3 and latent size
    64, whatever else the space searches (an axis the function does not read leaves the loss unchanged); the
    training seed moves it by less than 1 % (a fixed function of the seed, as seeds move a real model's loss)."""
    lr = float(flat.get("lr", 1e-3))
    latent = float(flat.get("latent_dim", 64))
    seed_effect = (int(flat.get("seed", 0)) * 2654435761 % 1000) / 1e5
    return 0.01 * (1.0 + (math.log10(lr) + 3.0) ** 2 + (math.log2(latent) - 6.0) ** 2 / 8.0) * (1 + seed_effect)


def synthetic_trainable(
    epoch_seconds: float = 0.0, checkpoints: bool = False, before_epoch: Callable[[int], None] | None = None
) -> Callable[[dict[str, Any], Any, Any], None]:
    """A Ray Tune function trainable that reports like :func:`search.trial.run_trial` without training: each
    epoch's val loss falls towards :func:`known_loss` of the configuration (``loss * (1 + 1/epoch)``), and the
    last epoch is final with that value as its test score. No TensorFlow: a trial costs milliseconds (plus
    ``epoch_seconds`` an epoch), so the search machinery (samplers, schedulers, resume) is tested in seconds.
    ``checkpoints``: each epoch is reported with a checkpoint (its number), and a restarted trial goes on from
    the epoch after it, as a real one does. ``before_epoch(epoch)`` runs in the trial before each epoch (a test
    holds a trial there to kill its worker, or signals its driver). Pass it as
    ``search.commands.run(opts, trainable=...)``."""

    def synthetic(config: dict[str, Any], data: Any, settings: Any) -> None:
        from ray import tune

        from search.trial import finished_record, keep_final_record, node_label, resolve_config

        flat = resolve_config(settings, config)
        epochs, target, node = int(flat["max_epochs"]), known_loss(flat), node_label()
        trial_id = tune.get_context().get_trial_id()
        finished = finished_record(settings.models_dir, trial_id)
        if finished is not None:  # finished before its driver stopped: the same final result, nothing again
            tune.report(finished)
            return
        first = _resumed_epoch(tune.get_checkpoint()) + 1
        started = time.time()
        for epoch in range(first, epochs + 1):
            if before_epoch is not None:
                before_epoch(epoch)
            time.sleep(epoch_seconds)
            value = target * (1.0 + 1.0 / epoch)  # falling: every epoch is the one kept so far
            metrics = {"loss": value, "val_loss": value, "val_mse": value, "seconds": epoch_seconds}
            this = EpochReport(epoch, metrics, kept={"val_mse": value, "val_loss": value},
                               costs={"params": 1000, "train_seconds": time.time() - started}, node=node)
            report: EpochReport | FinalReport = this
            if epoch == epochs:
                report = FinalReport(this, epochs=epochs, best_epoch=epochs, scores={"test_mse": value},
                                     finished_at=time.time())
                keep_final_record(settings.models_dir, trial_id, report.to_dict())
            if not checkpoints:
                tune.report(report.to_dict())
            else:
                with tempfile.TemporaryDirectory() as folder:
                    (Path(folder) / "epoch.json").write_text(json.dumps({"epoch": epoch}))
                    tune.report(report.to_dict(), checkpoint=tune.Checkpoint.from_directory(folder))
            if epoch < epochs and settings.stop_at is not None and time.time() >= settings.stop_at:
                return  # the study's hard time budget, as a real trial stops: without its final report

    return synthetic


def _resumed_epoch(checkpoint: Any) -> int:
    """The last epoch a synthetic trial's checkpoint holds (0: none)."""
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        return int(json.loads((Path(folder) / "epoch.json").read_text())["epoch"])
