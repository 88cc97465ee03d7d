"""The Ray Tune engine: run, resume and extend a study.

A study is one Optuna study (in RDB storage) and one or more Ray Tune *runs* under ``<study>/ray/``:

- ``run`` starts run ``run-1`` with ``samples`` trials;
- ``resume`` restores the last run if it was interrupted (``Tuner.restore``: finished trials are kept,
  running ones continue from their last epoch checkpoint, the searcher continues with its state), then,
  if the study still has fewer trials than asked for, starts a new run for the rest. A new run's searcher
  loads the same Optuna study, so the sampler learns from every earlier trial (``Tuner.restore`` alone
  cannot add samples).

The driver loads the dataset once and hands it to every trial through Ray's object store
(``tune.with_parameters``); it never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

import results
from cae.errors import UsageError
from results.trials import repeat_trials, search_trials
from search import compat, records
from search.interrupt import Interruption
from search.progress import ProgressView
from search.ray_files import clear_partials, recorded_trials, restore_deleted_checkpoints, unsigned_state
from search.records import REPEAT
from search.searcher import StudySearch
from search.storage import refuse_network_sqlite, warn_network_sqlite
from search.sweep import Sweep, Trainable
from search.trial import REPEAT_OF, SEED, SPLIT_SEED

logger = logging.getLogger(__name__)

# Ray saves its experiment state (every trial's state, ~25 KB each, and the searcher) at most every
# TUNE_GLOBAL_CHECKPOINT_S seconds; a killed driver loses at most that much of Ray's bookkeeping (a trial's own
# checkpoint forces a save regardless). A save costs ~0.5 ms per trial of the run here, so every second would
# take half the driver's time at 2,000 trials: the period is 1 s up to TRIALS_PER_SNAPSHOT_S trials, then grows
# with the run (8 s at 2,000; Ray's own default is 10 s or more), keeping saves near a tenth of the driver's time.
# Set TUNE_GLOBAL_CHECKPOINT_S yourself to fix it.
TRIALS_PER_SNAPSHOT_S = 250
# Tune's settings for a run, read by Tune during fit(); set only while a run of this engine lasts (tune_settings),
# and each one a user set beforehand is kept as it was.
TUNE_SETTINGS = {
    # A failed trial reports its reason without the objective; Ray must not treat that as a typo.
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    # Ray's result files (result.json, params.json) are written by the callbacks added in _tuner. Its automatic
    # TensorBoard logger is left out: tensorboardX imports PyTorch wherever that is installed (2 s at every start).
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # Keeping only the latest and best checkpoint forces a state snapshot per checkpoint; that is intended.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}
# SIGINT and SIGTERM are caesweep's (search.interrupt), which hands them to Tune through its SIGUSR1 handler:
# Tune's own handler is off during a run whatever the environment says.
FORCED_SETTINGS = {"TUNE_DISABLE_SIGINT_HANDLER": "1"}
_TUNE_LOGGERS = ("ray.tune.tune", "ray.tune.analysis.experiment_analysis")
_user_period: contextvars.ContextVar[str | None] = contextvars.ContextVar("user_period", default=None)


class _DropTuneResumeAdvice(logging.Filter):
    """Tune's own lines on an interruption name ``Tuner.restore``, which is not how a study continues; caesweep
    prints its own line (``python -m search resume ...``) instead."""

    _NOISE = ("Tuner.restore", "Stop signal received", "Trials did not complete", "Failed to fetch metrics")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in self._NOISE)


@contextlib.contextmanager
def tune_settings(sweep: Sweep) -> Iterator[None]:
    """Tune's environment, its log filter and Optuna's log level for the length of one engine run, restored
    after: importing caesweep changes nothing in the process, and two runs in one process (tests, notebooks)
    start from the same state."""
    import optuna

    wanted = {**{k: v for k, v in TUNE_SETTINGS.items() if k not in os.environ}, **FORCED_SETTINGS,
              "RAY_AIR_NEW_OUTPUT": "1" if sweep.verbose else "0"}
    before = {key: os.environ.get(key) for key in [*wanted, "TUNE_GLOBAL_CHECKPOINT_S"]}
    verbosity = optuna.logging.get_verbosity()
    advice = _DropTuneResumeAdvice()
    period = _user_period.set(before["TUNE_GLOBAL_CHECKPOINT_S"])  # the user's own period wins (snapshot_period)
    os.environ.update(wanted)
    # Optuna's INFO lines ("A new study created in RDB ...") would interleave with the progress view.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in _TUNE_LOGGERS:
        logging.getLogger(name).addFilter(advice)
    try:
        yield
    finally:
        _user_period.reset(period)
        for name in _TUNE_LOGGERS:
            logging.getLogger(name).removeFilter(advice)
        optuna.logging.set_verbosity(verbosity)
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


ASHA_REDUCTION = 3  # keep the best third at each rung
ASHA_GRACE = 1  # epochs every trial gets before it can be stopped
# Hyperband keeps the best third at each rung too; its rungs are at max_epochs / 3**k epochs, so it needs
# max_epochs >= 3 for a rung before the last (else every trial trains to the end, as with no scheduler).
HYPERBAND_REDUCTION = 3


# The tables are rewritten during a sweep when an event comes at least MIN_WRITE_INTERVAL_S after the last
# write, and at least WRITE_COST_FACTOR times as long as that write took: writing (O(trials), the CSV files)
# then takes at most 1/WRITE_COST_FACTOR of the driver's time however large the study grows. The end of a
# run always writes them; a killed driver's tables are rebuilt whole by resume.
MIN_WRITE_INTERVAL_S = 2.0
WRITE_COST_FACTOR = 20.0


class TableWriter:
    """Keeps trials.csv / history.csv current while the sweep runs, and shows them in the progress view."""

    def __init__(self, cache: records.TableCache, view: ProgressView) -> None:
        self.cache = cache
        self.view = view
        self._due = 0.0

    def write(self, final: bool = False) -> None:
        """``final``: the Ray run has ended (written whatever the rate; the view estimates no time left)."""
        began = time.monotonic()
        if final or began >= self._due:
            self.view.update(self.cache.write(), final=final)
            ended = time.monotonic()
            self._due = ended + max(MIN_WRITE_INTERVAL_S, WRITE_COST_FACTOR * (ended - began))


def table_writer(sweep: Sweep, view: ProgressView) -> TableWriter:
    return TableWriter(records.TableCache(sweep.paths, sweep.settings, sweep.storage_url), view)


def _callback(writer: TableWriter) -> Any:
    from ray import tune

    class _TableCallback(tune.Callback):
        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            writer.write()

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            writer.write()

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            writer.write()

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            writer.write(final=True)

    return _TableCallback()


def _tune_output(sweep: Sweep) -> int:
    """Tune's verbosity: its own tables with --verbose; otherwise nothing (the progress view speaks).

    Tune's new output prints an experiment header even when silent, so without --verbose the legacy reporter
    at verbosity 0 (errors only) is used (``RAY_AIR_NEW_OUTPUT``, set by :func:`tune_settings`).
    """
    return 1 if sweep.verbose else 0


def progress_view(sweep: Sweep) -> ProgressView:
    return ProgressView(sweep.paths.folder, sweep.samples, sweep.opts.objectives[0], sweep.opts.modes[0],
                        select=search_trials)


def _callbacks(sweep: Sweep, stop: Interruption, writer: TableWriter) -> list[Any]:
    """This process's callbacks: result files, the study's tables and progress view, the signal forwarder."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from search.ray_files import TrialFiles

    # Each trial's result.json: what the study's tables are rebuilt from; in a local study folder written there
    # directly (see search.ray_files), under a URI root through Ray's staging folder.
    files = [JsonLoggerCallback(), CSVLoggerCallback()] if sweep.ray_filesystem is None else [TrialFiles()]
    return [*files, _callback(writer), stop.tune_callback(), *sweep.trainable.driver_callbacks]


def _scheduler(sweep: Sweep) -> Any:
    """FIFO, ASHA or Hyperband; with several objectives ASHA and Hyperband judge the first one alone (size or time
    objectives are known before training). A trial either stops ends without its final report and is told PRUNED
    (StudySearch), never COMPLETE with a partial result; a trial Hyperband pauses is told nothing."""
    from search.schedulers import LiveASHAScheduler, LiveFIFOScheduler, LiveHyperBand

    if sweep.opts.scheduler == "none":
        return LiveFIFOScheduler()
    if sweep.opts.scheduler == "hyperband":
        # stop_last_trials=False: the trials a bracket's last rung keeps train to max_epochs and end on their own.
        return LiveHyperBand(time_attr="epoch", max_t=sweep.max_epochs, reduction_factor=HYPERBAND_REDUCTION,
                             stop_last_trials=False, max_running=sweep.opts.concurrency)
    # stop_last_trials=False: a trial that reaches max_epochs ends on its own, with its final report.
    return LiveASHAScheduler(
        time_attr="epoch",
        max_t=sweep.max_epochs,
        grace_period=min(ASHA_GRACE, sweep.max_epochs),
        reduction_factor=ASHA_REDUCTION,
        stop_last_trials=False,
    )


class SizeCap:
    """Whether a drawn configuration is within ``--max-params`` / ``--max-weights-mb`` (computed from its config,
    before any training: cae.size); the reason when it is not."""

    def __init__(self, settings: Any, max_params: int | None, max_weights_mb: float | None) -> None:
        self.settings, self.max_params, self.max_weights_mb = settings, max_params, max_weights_mb

    def __call__(self, params: dict[str, Any]) -> str | None:
        from cae.size import size_refusal
        from search.trial import resolve_config

        return size_refusal(resolve_config(self.settings, params), self.max_params, self.max_weights_mb)


def _searcher(sweep: Sweep, run: int = 1, deadline: float | None = None) -> Any:
    opts = sweep.opts
    capped = opts.max_params is not None or opts.max_weights_mb is not None
    return StudySearch(
        sweep.space,
        objectives=opts.objectives,
        modes=opts.modes,
        sampler=sweep.sampler(run),
        storage_url=str(sweep.storage_url),
        study_name=sweep.paths.name,
        grid=sweep.grid is not None,
        admit=SizeCap(sweep.settings, opts.max_params, opts.max_weights_mb) if capped else None,
        deadline=deadline,
    )


def _search_alg(sweep: Sweep, run: int = 1) -> Any:
    """The run's searcher; under Hyperband with ``--concurrency`` wrapped so that a trial paused at its rung does
    not count as running (search.schedulers.HyperBandLimiter)."""
    searcher = _searcher(sweep, run, sweep.deadline)
    if sweep.opts.scheduler != "hyperband" or sweep.opts.concurrency is None:
        return searcher
    from search.schedulers import HyperBandLimiter

    return HyperBandLimiter(searcher, max_concurrent=sweep.opts.concurrency)


def _concurrency(sweep: Sweep) -> int | None:
    """Tune's ``max_concurrent_trials``: Hyperband's limiter already applies it (None)."""
    return None if sweep.opts.scheduler == "hyperband" else sweep.opts.concurrency


def _trainable(sweep: Sweep) -> Any:
    from ray import tune

    resources = {"cpu": sweep.opts.cpus_per_trial, "gpu": sweep.opts.gpus_per_trial}
    bound = tune.with_parameters(sweep.trainable.fn, data=sweep.data, settings=sweep.settings)
    return tune.with_resources(bound, resources)


def _tuner(sweep: Sweep, run_name: str, num_samples: int, stop: Interruption, writer: TableWriter) -> Any:
    from ray import tune

    run_config = tune.RunConfig(
        name=run_name,
        storage_path=sweep.ray_storage,
        storage_filesystem=sweep.ray_filesystem,
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=1,  # the best by the objective; Ray always keeps the latest as well
            checkpoint_score_attribute=sweep.opts.objectives[0],
            checkpoint_score_order=sweep.opts.modes[0],
        ),
        failure_config=tune.FailureConfig(max_failures=sweep.opts.max_failures),
        callbacks=_callbacks(sweep, stop, writer),
        verbose=_tune_output(sweep),
    )
    tune_config = tune.TuneConfig(
        search_alg=_search_alg(sweep, int(run_name.rsplit("-", 1)[-1])),
        scheduler=_scheduler(sweep),
        num_samples=num_samples,
        metric=sweep.opts.objectives[0],
        mode=sweep.opts.modes[0],
        max_concurrent_trials=_concurrency(sweep),
        reuse_actors=sweep.opts.gpus_per_trial == 0,  # one TensorFlow import per CPU worker, not per trial
        trial_dirname_creator=records.trial_dirname,
    )
    return tune.Tuner(_trainable(sweep), tune_config=tune_config, run_config=run_config)


def snapshot_period(trials: int, fixed: str | None = None) -> str:
    """Ray's experiment-state period for a run of ``trials`` trials (``TUNE_GLOBAL_CHECKPOINT_S``); ``fixed``: the
    period the user set in the environment, which wins."""
    return fixed or f"{max(1.0, trials / TRIALS_PER_SNAPSHOT_S):g}"


def _fit(tuner: Any, trials: int) -> None:
    """``tuner.fit()`` with the state period for its size (read by Tune at each fit; restored by tune_settings)."""
    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = snapshot_period(trials, _user_period.get())
    tuner.fit()


def run_name(index: int) -> str:
    return f"run-{index}"


def run(sweep: Sweep, meta: dict[str, Any], stop: Interruption, resume: bool) -> pd.DataFrame:
    """Run (or continue) the study's Ray runs until it has ``sweep.samples`` trials; returns the trial table.

    A resumed study first continues its last run unless that run ended cleanly; then, if trials are still
    missing (an extension), it starts a new run for them. A signal (``stop``) ends the run in progress as
    Tune does for Ctrl-C and starts nothing new.
    """
    started = time.monotonic()
    sweep = _with_budget(sweep, meta, started)
    view = progress_view(sweep)
    writer = table_writer(sweep, view)
    try:
        with tune_settings(sweep):
            if resume and meta.get("status") != "done" and not stop.requested:
                _restore_run(sweep, meta, stop, writer)
            missing = sweep.samples - (trial_count(sweep) if resume else 0)  # a new study's folder has no trial yet
            if missing > 0 and not stop.requested and not _spent(sweep):
                _start_run(sweep, meta, missing, stop, writer)
            trials = finish(sweep, meta, writer.cache)
        view.update(trials, final=True)
    finally:
        view.close()
        _record_time(sweep, meta, started)
    return trials


def _with_budget(sweep: Sweep, meta: dict[str, Any], started: float) -> Sweep:
    """The sweep with its time budget's deadline in this process: the budget less what the study's earlier runs
    spent (``time_spent_s`` in study.json); a hard budget also stops running trials (TrialSettings.stop_at)."""
    budget = sweep.opts.time_budget_s
    if budget is None:
        return sweep
    left = budget - float(meta.get("time_spent_s", 0.0))
    settings = replace(sweep.settings, stop_at=time.time() + left) if sweep.opts.time_budget_hard else sweep.settings
    return replace(sweep, deadline=started + left, settings=settings)


def _spent(sweep: Sweep) -> bool:
    return sweep.deadline is not None and time.monotonic() >= sweep.deadline


def _record_time(sweep: Sweep, meta: dict[str, Any], started: float) -> None:
    """Add this run's wall time to the study's (a resume continues the same budget); say when the budget ended
    the study."""
    from search.metadata import update_meta

    spent = float(meta.get("time_spent_s", 0.0)) + time.monotonic() - started
    changes: dict[str, Any] = {"time_spent_s": round(spent, 3)}
    if _spent(sweep) and meta.get("ended_by") != "time budget":
        changes["ended_by"] = "time budget"
        budget = sweep.opts.time_budget_s or 0.0
        print(f"note: time budget reached ({_duration(spent)} of {_duration(budget)} spent); the study ends with "
              f"{trial_count(sweep)} of {sweep.samples} trials", flush=True)
    update_meta(sweep.paths, meta, **changes)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _start_run(
    sweep: Sweep, meta: dict[str, Any], num_samples: int, stop: Interruption, writer: TableWriter
) -> None:
    """Start a new Ray run of ``num_samples`` trials within the study."""
    from search.metadata import update_meta

    name = run_name(len(meta["runs"]) + 1)
    update_meta(sweep.paths, meta, runs=[*meta["runs"], name])
    stop.run_started()
    _fit(_tuner(sweep, name, num_samples, stop, writer), num_samples)


def _restore_run(
    sweep: Sweep, meta: dict[str, Any], stop: Interruption, writer: TableWriter, name: str | None = None
) -> bool:
    """Continue the study's last run (or the run ``name``) if Ray can restore it; False when there is nothing
    to restore."""
    from ray import tune

    if name is None and not meta["runs"]:
        return False
    name = name or meta["runs"][-1]
    path = f"{sweep.ray_storage}/{name}"
    filesystem = sweep.ray_filesystem
    if filesystem is not None:
        clear_partials(path)  # a state file the killed driver was writing: its previous version is whole
        restore_deleted_checkpoints(path)  # checkpoints its last saved state may still name
    if not tune.Tuner.can_restore(path, storage_filesystem=filesystem):
        _set_aside(sweep, name)
        return False
    untrusted = unsigned_state(path) if filesystem is not None else "its state lies under a URI root, unsigned"
    if untrusted is not None:  # Ray would unpickle what this user did not write: nothing of it is loaded
        _rebuild_untrusted(sweep, name, untrusted)
        return False
    if filesystem is not None:
        _set_aside_unrecorded(sweep, name)
    tuner = tune.Tuner.restore(path, trainable=_trainable(sweep), resume_unfinished=True, resume_errored=True,
                               storage_filesystem=filesystem)
    # Bind the restored run to where the study is now; its searcher's bookkeeping is restored onto the new one
    # from the experiment folder (StudySearch.restore: plain JSON, checked against the study's own storage).
    compat.rebind_restored(tuner, _callbacks(sweep, stop, writer), _search_alg(sweep))
    stop.run_started()
    _fit(tuner, sweep.samples)
    return True


def run_repeats(
    sweep: Sweep, meta: dict[str, Any], stop: Interruption, configs: list[dict[str, Any]], target: int,
    unfinished: bool,
) -> pd.DataFrame:
    """A confirm run: train each of ``configs`` (sampled values plus ``repeat_of`` and ``seed``) once, to the
    end (no scheduler), told to no sampler. An interrupted confirm run is continued first."""
    view = ProgressView(sweep.paths.folder, target, sweep.opts.objectives[0], sweep.opts.modes[0],
                        select=repeat_trials)
    writer = table_writer(sweep, view)
    try:
        with tune_settings(sweep):
            _confirm_runs(sweep, meta, stop, configs, writer, unfinished)
    finally:
        view.close()
    return writer.cache.write()


def _confirm_runs(
    sweep: Sweep, meta: dict[str, Any], stop: Interruption, configs: list[dict[str, Any]], writer: TableWriter,
    unfinished: bool,
) -> None:
    from ray import tune

    from search.metadata import update_meta

    runs = list(meta.get("confirm_runs", []))
    repeat = replace(sweep, trainable=_repeating(sweep.trainable), data=_split_data(sweep, configs))
    if runs and unfinished and not stop.requested:  # the last confirm run was stopped: continue it first
        _restore_run(repeat, meta, stop, writer, name=runs[-1])
        trained = records.repeats_done(writer.cache.collect()[0], sweep.opts.split_seed)
        configs = [c for c in configs if (c[REPEAT_OF], int(c[SEED]), int(c[SPLIT_SEED])) not in trained]
    if configs and not stop.requested:
        name = f"confirm-{len(runs) + 1}"
        update_meta(sweep.paths, meta, confirm_runs=[*runs, name])
        tune_config = tune.TuneConfig(
            num_samples=1,  # each configuration of the grid below once
            metric=sweep.opts.objectives[0],
            mode=sweep.opts.modes[0],
            max_concurrent_trials=sweep.opts.concurrency,
            reuse_actors=sweep.opts.gpus_per_trial == 0,
            trial_dirname_creator=records.trial_dirname,
        )
        run_config = tune.RunConfig(
            name=name, storage_path=sweep.ray_storage, storage_filesystem=sweep.ray_filesystem,
            callbacks=_callbacks(sweep, stop, writer),
            verbose=_tune_output(sweep),
            failure_config=tune.FailureConfig(max_failures=sweep.opts.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        )
        stop.run_started()
        space = {REPEAT: tune.grid_search(configs)}  # the listed configurations, each a whole trial config
        _fit(tune.Tuner(_trainable(repeat), param_space=space, tune_config=tune_config, run_config=run_config),
             len(configs))


def _split_data(sweep: Sweep, configs: list[dict[str, Any]]) -> Any:
    """The data a confirm run's trials use: the study's, or, when some repeat on other splits, every split's
    dataset by split seed (each loaded once, here in the driver; the trial picks its own: search.trial.data_for).
    """
    from cae.data import load_dataset

    seeds = {int(c[SPLIT_SEED]) for c in configs} - {sweep.opts.split_seed}
    if not seeds:
        return sweep.data
    fixed = {**sweep.space.fixed, **sweep.settings.overrides}
    limit = sweep.opts.limit if sweep.opts.limit is not None else fixed.get("limit")
    loaded = {seed: load_dataset(str(fixed["data"]), image_size=int(fixed["image_size"]), seed=seed, limit=limit)
              for seed in sorted(seeds)}
    return {sweep.opts.split_seed: sweep.data, **loaded}


def _repeating(trainable: Trainable) -> Trainable:
    """A confirm run's trainable: the study's own, given the configuration listed under ``REPEAT``."""
    fn = trainable.fn

    def run_repeat(config: dict[str, Any], **bound: Any) -> None:
        fn(dict(config[REPEAT]), **bound)

    return replace(trainable, fn=run_repeat)


def _set_aside(sweep: Sweep, name: str) -> None:
    """A run killed before Ray saved any state: keep its files, out of the study's tables."""
    folder = sweep.paths.ray_dir / name
    if folder.exists():
        shutil.move(str(folder), str(sweep.paths.ray_dir / f"_abandoned-{name}-{int(time.time())}"))


def _rebuild_untrusted(sweep: Sweep, name: str, reason: str) -> None:
    """Continue a run whose saved state this user did not sign (a handed or copied-in folder, or one from before
    caesweep signed its state) from plain data alone, without unpickling anything of it.

    Its finished trials stay where they are (their reports and the Optuna storage say so; one that finished
    while Optuna was not told is told now). Its unfinished ones are set aside like trials Ray cannot continue
    (their files kept under ``ray/_untrusted-<run>-<time>/``) and their Optuna trials freed, so the next run
    trains them again from their first epoch under the same numbers.
    """
    from search.reconcile import release_unrecorded, tell_finished

    folder = sweep.paths.ray_dir / name
    trials, _ = records.collect(sweep.paths, sweep.settings, sweep.storage_url)
    mine = trials[trials["trial_id"].isin({p.name.removeprefix("trial_") for p in folder.glob("trial_*")})]
    ended = dict(zip(mine["trial_id"], mine["status"], strict=True))
    told = tell_finished(str(sweep.storage_url), sweep.paths.name, folder, sweep.opts.objectives) \
        if sweep.storage_url is not None else 0
    unfinished = {tid for tid, status in ended.items() if status in (results.RUNNING, results.PENDING)}
    if unfinished:
        release_unrecorded(str(sweep.storage_url), sweep.paths.name, unfinished)
        _move_aside(sweep, name, sorted(unfinished), "untrusted")
    print(f"note: {name} of study {sweep.paths.name} is not restored from Ray's saved state ({reason}); nothing "
          f"of it is unpickled: its {len(ended) - len(unfinished)} ended trials are kept"
          + (f" ({told} told to Optuna now)" if told else "")
          + f", its {len(unfinished)} unfinished ones start again from their first epoch", flush=True)


def _move_aside(sweep: Sweep, name: str, trial_ids: list[str], why: str) -> Path:
    """Move trials of run ``name`` (and their TensorBoard runs) to ``ray/_<why>-<run>-<time>/``, where no table
    or TensorBoard reads them; the folder."""
    folder = sweep.paths.ray_dir / name
    aside = sweep.paths.ray_dir / f"_{why}-{name}-{int(time.time())}"
    for trial_id in trial_ids:
        aside.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder / f"trial_{trial_id}"), str(aside / f"trial_{trial_id}"))
        board = sweep.paths.tensorboard_run(trial_id)
        if board.exists():
            (aside / "tensorboard").mkdir(exist_ok=True)
            shutil.move(str(board), str(aside / "tensorboard" / trial_id))
    return aside


def _set_aside_unrecorded(sweep: Sweep, name: str) -> list[str]:
    """Trials of run ``name`` that its saved state does not list: keep their files, out of the study's tables;
    the trial ids.

    A driver killed after starting a trial and before Ray next saved its state (at most a second, see
    TUNE_GLOBAL_CHECKPOINT_S; a trial's first checkpoint forces a save) leaves that trial's folder, and at most
    its first epoch, that ``Tuner.restore`` knows nothing of. Its Optuna trial is freed and trained again from
    the start under a new Ray trial; its files go to ``ray/_abandoned-<run>-<time>/`` (its TensorBoard run
    under ``tensorboard/`` there), where no table or TensorBoard reads them.
    """
    from search.reconcile import release_unrecorded

    folder = sweep.paths.ray_dir / name
    recorded = recorded_trials(folder)
    if recorded is None:
        return []
    unrecorded = {p.name.removeprefix("trial_") for p in folder.glob("trial_*") if p.is_dir()} - recorded
    if not unrecorded:
        return []
    numbers = release_unrecorded(str(sweep.storage_url), sweep.paths.name, unrecorded)
    aside = _move_aside(sweep, name, sorted(numbers), "abandoned")
    for trial_id, number in sorted(numbers.items()):
        again = "" if number is None else f"; Optuna trial {number} is trained again from its first epoch"
        logger.warning("trial %s was started after Ray last saved the run's state, so Ray cannot continue it%s "
                       "(its files: %s)", trial_id, again, aside.relative_to(sweep.paths.folder))
    return sorted(numbers)


def trial_count(sweep: Sweep) -> int:
    """The trials the search has made so far (a confirm run's repeats are not among them)."""
    trials, _ = records.collect(sweep.paths, sweep.settings, sweep.storage_url)
    return len(search_trials(trials))


def finish(sweep: Sweep, meta: dict[str, Any], cache: records.TableCache | None = None) -> pd.DataFrame:
    """Reconcile Optuna with Ray and write the final tables (and the Pareto set); returns the trial table.

    ``cache``: the run's own (only what changed is read again); without it, the tables are rebuilt whole.
    """
    from search.metadata import update_meta
    from search.reconcile import close_orphans, pareto_numbers, refused_count

    cache = cache or records.TableCache(sweep.paths, sweep.settings, sweep.storage_url)
    trials = cache.write()
    if not (trials["status"] == results.RUNNING).any():  # an interrupted study keeps its running trials
        close_orphans(str(sweep.storage_url), sweep.paths.name, set(trials["trial_id"]))
        trials = cache.write()
    if sweep.opts.multi_objective:
        update_meta(sweep.paths, meta, pareto=pareto_numbers(str(sweep.storage_url), sweep.paths.name))
    if sweep.opts.max_params is not None or sweep.opts.max_weights_mb is not None:
        update_meta(sweep.paths, meta, refused=refused_count(str(sweep.storage_url), sweep.paths.name))
    return trials


def ray_init(address: str | None) -> None:
    """Start a private Ray (``address`` None) or join a cluster; a cluster that cannot be reached is a
    :class:`UsageError`."""
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "configure_logging": True,
        "logging_level": logging.WARNING,
        "log_to_driver": False,  # trial output stays in Ray's logs; results and errors reach the tables
    }
    env = {
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
        # A reused worker waits for a stopped trial's thread to reach its next report (up to an epoch);
        # Ray's default of 2 s would fail the next trial scheduled on that worker.
        "TUNE_FUNCTION_THREAD_TIMEOUT_S": os.environ.get("TUNE_FUNCTION_THREAD_TIMEOUT_S", "600"),
    }
    if address is None:
        # Ray starts a worker per CPU for a new cluster's first driver; trials run in actors of their own, so on a
        # private Ray those workers only idled (measured: two idle workers, 1.6 CPU-s of a 4-trial sweep's 29).
        kwargs["_system_config"] = {"prestart_worker_first_driver": False}
    try:
        # "local": always a private Ray for this driver, never a cluster some other process left running.
        ray.init(address=address or "local", runtime_env={"env_vars": env}, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        if address is None:
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UsageError(f"--address {address}: no Ray cluster could be joined ({first}); start one with "
                         "`ray start --head` or fix the address") from None


def _check_reachable(address: str) -> None:
    """A ``HOST:PORT`` or ``ray://HOST:PORT`` address must accept a connection (Ray itself retries for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address} is not auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UsageError(f"--address {address}: nothing answers there ({exc.strerror or exc}); start the cluster's "
                         "head with `ray start --head` or fix the address") from None


def check_cluster(sweep: Sweep) -> None:
    """Join the cluster, and refuse a local results root that other machines of it cannot see, or SQLite on a
    network filesystem for a cluster of several nodes (on one node, that is a warning)."""
    opts = sweep.opts
    if opts.address not in (None, "auto"):
        _check_reachable(str(opts.address))
    ray_init(opts.address)
    if opts.address is not None:
        import ray

        refuse_network_sqlite(sweep.storage_url, sum(1 for n in ray.nodes() if n.get("Alive")))
    warn_network_sqlite(sweep.storage_url)
    if opts.address is None or results.is_uri(opts.root) or opts.extra.get("shared_root"):
        return
    visible, others = local_root_is_visible(Path(opts.root))
    if opts.address.startswith("ray://") or not visible:
        where = f"nodes on other machines ({others})" if others else "a Ray client connection"
        raise UsageError(
            f"--root {opts.root} is a local folder but the cluster has {where}: trials could not write their "
            "results there; pass a shared path (NFS) with --root /shared/path --shared-root, or an "
            "s3://bucket/prefix style URI"
        )


def local_root_is_visible(root: Path) -> tuple[bool, str]:
    """Whether every node of the connected cluster can see a local root: all nodes on this machine."""
    import ray

    here = ray.util.get_node_ip_address()
    others = sorted({n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")} - {here})
    return (not others, ", ".join(others))


def check_hyperband(sweep: Sweep) -> Sweep:
    """Refuse Hyperband where it could stop nothing: max_epochs under its reduction factor has no rung before the
    last. A study of fewer trials than its first bracket holds is said (that bracket is judged with what it has)."""
    if sweep.opts.scheduler != "hyperband":
        return sweep
    if sweep.max_epochs < HYPERBAND_REDUCTION:
        raise UsageError(
            f"--scheduler hyperband keeps the best 1/{HYPERBAND_REDUCTION} at rungs of max_epochs/{HYPERBAND_REDUCTION}"
            f"**k epochs: max_epochs {sweep.max_epochs} has no rung before the last; give --max-epochs "
            f"{HYPERBAND_REDUCTION} or more, or use --scheduler asha"
        )
    first = hyperband_bracket(sweep.max_epochs)
    if sweep.samples < first:
        print(f"note: Hyperband's first bracket (max_epochs {sweep.max_epochs}, factor {HYPERBAND_REDUCTION}) holds "
              f"{first} trials; with {sweep.samples} it keeps the best {-(-first // HYPERBAND_REDUCTION)} of them "
              "at its first rung, so it may stop fewer")
    return sweep


def hyperband_bracket(max_epochs: int, eta: int = HYPERBAND_REDUCTION) -> int:
    """The trials of Hyperband's first (largest) bracket for ``max_epochs``: Ray's sizes, ``s_max + 1`` brackets
    of ``ceil((s_max + 1) / (s + 1) * eta**s)`` trials whose first rung is ``int(max_epochs / eta**s)`` epochs,
    filled from the largest ``s`` whose first rung is at least one epoch."""
    brackets = round(math.log(max_epochs) / math.log(eta)) + 1
    s = next(s for s in range(brackets - 1, -1, -1) if int(max_epochs * eta ** (-s)) > 0)
    return math.ceil(brackets / (s + 1) * eta**s)


class RayEngine:
    """Ray Tune + Optuna (:mod:`search.engine`'s protocol over this module's functions)."""

    name = "ray"
    confirms = True

    def check_options(self, sweep: Sweep) -> Sweep:
        return check_hyperband(sweep)  # every other option is the Ray engine's own

    def prepare(self, sweep: Sweep) -> None:
        check_cluster(sweep)

    def run(self, sweep: Sweep, meta: dict[str, Any], stop: Interruption, resume: bool) -> pd.DataFrame:
        return run(sweep, meta, stop, resume)

    def trial_count(self, sweep: Sweep) -> int:
        return trial_count(sweep)

    def started(self, sweep: Sweep) -> bool:
        return any(sweep.paths.folder.glob("ray/run-*/trial_*"))

    def confirm(
        self, sweep: Sweep, meta: dict[str, Any], stop: Interruption, configs: Sequence[dict[str, Any]],
        target: int, unfinished: bool,
    ) -> pd.DataFrame:
        return run_repeats(sweep, meta, stop, list(configs), target, unfinished)
