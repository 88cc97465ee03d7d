"""The keras-tuner engine: the tuner over a :class:`~search.sweep.Sweep`, run and resume (one trial at a time)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

import results
from cae.errors import UsageError
from search.gpu import configure_devices
from search.interrupt import Interruption
from search.kt.space import HYPERBAND_FACTOR, declare_space, hyperband_trials, space_conditions
from search.kt.trial import TrialRunner, _Stop
from search.progress import ProgressView
from search.sweep import Sweep


def check_options(sweep: Sweep) -> Sweep:
    """Refuse what this engine cannot do; a Hyperband study's trial count is Hyperband's own."""
    opts = sweep.opts
    if opts.address is not None:
        raise UsageError("--address joins a Ray cluster; the keras-tuner engine runs on this machine (drop it)")
    if results.is_uri(opts.root):
        raise UsageError(f"the keras-tuner engine writes to a local folder; --root {opts.root} is a URI")
    if opts.concurrency not in (None, 1):
        raise UsageError("the keras-tuner engine runs one trial at a time; drop --concurrency or use --engine ray")
    if opts.kt_tuner != "hyperband":
        return sweep
    samples = hyperband_trials(sweep.max_epochs)
    if sweep.samples != samples and sweep.paths.meta.exists():
        raise UsageError(
            f"study {sweep.paths.name!r} is a Hyperband study of {samples} trials (one iteration for max_epochs "
            f"{sweep.max_epochs}); Hyperband cannot be extended; start a new study for more trials"
        )
    if opts.samples is not None and opts.samples != samples:
        print(f"note: one Hyperband iteration with max_epochs {sweep.max_epochs} and factor {HYPERBAND_FACTOR} "
              f"runs {samples} trials; --samples {opts.samples} does not apply to hyperband")
    return replace(sweep, samples=samples)


def check_cluster(sweep: Sweep) -> None:
    """No Ray here: set up TensorFlow's devices (CPU threads or a GPU share) before TensorFlow starts."""
    configure_devices(sweep.opts.gpus_per_trial, sweep.opts.cpus_per_trial, sweep.opts.gpu_memory)


def _oracle(sweep: Sweep, conditions: dict[str, tuple[str, list[int]]]) -> Any:
    import keras_tuner

    opts, target = sweep.opts, sweep.samples
    common = {
        "objective": keras_tuner.Objective(opts.objectives[0], direction=opts.modes[0]),
        "seed": opts.seed + 1,  # keras-tuner draws a random seed for 0
        "hyperparameters": declare_space(sweep.space, conditions),
        "max_retries_per_trial": 0,  # a failure is a result; an interrupted trial is re-run by resume
        "max_consecutive_failed_trials": target + 1,  # never reached: failures never stop the study
    }
    if opts.kt_tuner == "hyperband":
        oracle = keras_tuner.oracles.HyperbandOracle(
            max_epochs=sweep.max_epochs, factor=HYPERBAND_FACTOR, hyperband_iterations=1, **common
        )
        oracle.max_trials = target  # the bracket sizes add up to this; it also gives short trial ids
        return oracle
    if opts.kt_tuner == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(max_trials=target, **common)
    return keras_tuner.oracles.RandomSearchOracle(max_trials=target, **common)


def _tuner(runner: TrialRunner, view: ProgressView) -> Any:
    """keras-tuner's search loop with caesweep's trial; reloads ``<study>/kt`` when it exists."""
    import keras_tuner

    class CaeTuner(keras_tuner.Tuner):
        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
            return runner.run_trial(trial, Path(self.get_trial_dir(trial.trial_id)))

        def on_trial_begin(self, trial: Any) -> None:
            super().on_trial_begin(trial)
            view.update(runner.write_tables(self))

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            view.update(runner.write_tables(self))  # after every trial: an interrupted study keeps what finished
            if runner.stop.requested:
                raise _Stop

    kt_dir = runner.sweep.paths.kt_dir
    return CaeTuner(_oracle(runner.sweep, runner.conditions), directory=str(kt_dir.parent), project_name=kt_dir.name)


def run(sweep: Sweep, meta: dict[str, Any], stop: Interruption, resume: bool) -> pd.DataFrame:
    """Search until the study has its trials (or a signal stops it); returns the trial table."""
    runner = TrialRunner(sweep, space_conditions(sweep.space), stop)
    view = ProgressView(sweep.paths.folder, sweep.samples, sweep.opts.objectives[0], sweep.opts.modes[0])
    tuner = _tuner(runner, view)
    try:
        if not stop.requested:
            tuner.search(verbose=1 if sweep.verbose else 0)
    except _Stop:
        pass  # the running trial stays RUNNING; resume runs it again
    finally:
        trials = runner.write_tables(tuner)
        view.update(trials, final=True)
        view.close()
    return trials


def trial_count(sweep: Sweep) -> int:
    """Trials keras-tuner has created so far: its ``trial_<id>`` folders (read without starting a search)."""
    return sum(1 for p in sweep.paths.kt_dir.glob("trial_*") if p.is_dir())


class KerasTunerEngine:
    """keras-tuner (:mod:`search.engine`'s protocol over this module's functions): one trial at a time, in this
    process, no Ray; no confirm runs."""

    name = "keras-tuner"
    confirms = False

    def check_options(self, sweep: Sweep) -> Sweep:
        return check_options(sweep)

    def prepare(self, sweep: Sweep) -> None:
        check_cluster(sweep)

    def run(self, sweep: Sweep, meta: dict[str, Any], stop: Interruption, resume: bool) -> pd.DataFrame:
        return run(sweep, meta, stop, resume)

    def trial_count(self, sweep: Sweep) -> int:
        return trial_count(sweep)

    def started(self, sweep: Sweep) -> bool:
        return any(sweep.paths.folder.glob("kt/trial_*"))

    def confirm(
        self, sweep: Sweep, meta: dict[str, Any], stop: Interruption, configs: Sequence[dict[str, Any]],
        target: int, unfinished: bool,
    ) -> pd.DataFrame:
        raise UsageError(f"study {sweep.paths.name!r} ran on keras-tuner; confirm runs on the Ray engine (a Ray "
                         "study)")
