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

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import results
from cae.data import Dataset
from search import records
from search.options import SweepOptions
from search.samplers import make_sampler
from search.searcher import StudySearch
from search.trial import TrialSettings, run_trial
from spaces import Space

logger = logging.getLogger(__name__)

# Save Ray's experiment state (trials + searcher) at least every second, so a killed driver loses at most
# the last second of bookkeeping; the trials' own checkpoints are written every epoch regardless.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
# A failed trial reports its reason without the objective; Ray must not treat that as a typo.
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1")
# Ray's result files (result.json, progress.csv) are written by the loggers added in _tuner. Its automatic
# TensorBoard logger is left out: tensorboardX imports PyTorch wherever that is installed (2 s at every start).
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# Keeping only the latest and best checkpoint forces a state snapshot per checkpoint; that is intended.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

ASHA_REDUCTION = 3  # keep the best third at each rung
ASHA_GRACE = 1  # epochs every trial gets before it can be stopped


@dataclass(frozen=True)
class Runtime:
    """What a run needs besides the options: the resolved space, data, trial settings and storage."""

    opts: SweepOptions
    space: Space
    data: Dataset
    settings: TrialSettings
    paths: results.StudyPaths
    storage_url: str
    samples: int  # the study's target number of trials
    max_epochs: int
    # What each trial runs: caesweep's training (the default), or e.g. a tabular benchmark's replay, which
    # must report like search.trial.run_trial (per-epoch "epoch" and objectives, "final" with test scores).
    trainable: Callable[..., None] = run_trial

    @property
    def ray_storage(self) -> str:
        """Where Ray writes its experiments: the study's ray/ folder, or the same under a URI root."""
        if results.is_uri(self.opts.root):
            return f"{str(self.opts.root).rstrip('/')}/{self.paths.name}/ray"
        return str(self.paths.ray_dir.resolve())


class TableWriter:
    """A Ray Tune callback that keeps trials.csv / history.csv current while the sweep runs."""

    def __init__(self, paths: results.StudyPaths, settings: TrialSettings, storage_url: str) -> None:
        self.paths = paths
        self.settings = settings
        self.storage_url = storage_url
        self._last = 0.0

    def write(self, force: bool = False) -> None:
        if force or time.monotonic() - self._last > 2.0:
            records.write(self.paths, self.settings, self.storage_url)
            self._last = time.monotonic()


def _callback(writer: TableWriter) -> Any:
    from ray import tune

    class _TableCallback(tune.Callback):
        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            writer.write()

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            writer.write(force=True)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            writer.write(force=True)

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            writer.write(force=True)

    return _TableCallback()


def _scheduler(rt: Runtime) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if rt.opts.scheduler == "none" or rt.opts.multi_objective:
        return FIFOScheduler()
    # stop_last_trials=False: a trial that reaches max_epochs ends on its own, with its final report.
    return ASHAScheduler(
        time_attr="epoch",
        max_t=rt.max_epochs,
        grace_period=min(ASHA_GRACE, rt.max_epochs),
        reduction_factor=ASHA_REDUCTION,
        stop_last_trials=False,
    )


def _searcher(rt: Runtime) -> Any:
    grid = rt.space.grid() if rt.opts.sampler == "grid" else None
    sampler = make_sampler(rt.opts.sampler, rt.opts.seed, grid=grid)
    return StudySearch(
        rt.space,
        objectives=rt.opts.objectives,
        modes=rt.opts.modes,
        sampler=sampler,
        storage_url=rt.storage_url,
        study_name=rt.paths.name,
        grid=grid is not None,
    )


def _trainable(rt: Runtime) -> Any:
    from ray import tune

    resources = {"cpu": rt.opts.cpus_per_trial, "gpu": rt.opts.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(rt.trainable, data=rt.data, settings=rt.settings), resources)


def _tuner(rt: Runtime, run_name: str, num_samples: int) -> Any:
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    run_config = tune.RunConfig(
        name=run_name,
        storage_path=rt.ray_storage,
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=1,  # the best by val_mse; Ray always keeps the latest as well
            checkpoint_score_attribute=rt.opts.objectives[0],
            checkpoint_score_order=rt.opts.modes[0],
        ),
        failure_config=tune.FailureConfig(max_failures=rt.opts.max_failures),
        callbacks=[
            JsonLoggerCallback(),  # each trial's result.json: what the study's tables are rebuilt from
            CSVLoggerCallback(),
            _callback(TableWriter(rt.paths, rt.settings, rt.storage_url)),
        ],
        verbose=1,
    )
    tune_config = tune.TuneConfig(
        search_alg=_searcher(rt),
        scheduler=_scheduler(rt),
        num_samples=num_samples,
        metric=rt.opts.objectives[0],
        mode=rt.opts.modes[0],
        max_concurrent_trials=rt.opts.concurrency,
        reuse_actors=rt.opts.gpus_per_trial == 0,  # one TensorFlow import per CPU worker, not per trial
        trial_dirname_creator=records.trial_dirname,
    )
    return tune.Tuner(_trainable(rt), tune_config=tune_config, run_config=run_config)


def run_name(index: int) -> str:
    return f"run-{index}"


def start_run(rt: Runtime, meta: dict[str, Any], num_samples: int) -> None:
    """Start a new Ray run of ``num_samples`` trials within the study."""
    from search.study import update_meta

    name = run_name(len(meta["runs"]) + 1)
    update_meta(rt.paths, meta, runs=[*meta["runs"], name], status="running")
    _tuner(rt, name, num_samples).fit()


def restore_run(rt: Runtime, meta: dict[str, Any]) -> bool:
    """Continue the study's last run if Ray can restore it; False when there is nothing to restore."""
    from ray import tune

    if not meta["runs"]:
        return False
    name = meta["runs"][-1]
    path = f"{rt.ray_storage}/{name}"
    if not tune.Tuner.can_restore(path):
        _set_aside(rt, name)
        return False
    tuner = tune.Tuner.restore(path, trainable=_trainable(rt), resume_unfinished=True, resume_errored=True)
    tuner.fit()
    return True


def _set_aside(rt: Runtime, name: str) -> None:
    """A run killed before Ray saved any state: keep its files, out of the study's tables."""
    folder = rt.paths.ray_dir / name
    if folder.exists():
        shutil.move(str(folder), str(rt.paths.ray_dir / f"_abandoned-{name}-{int(time.time())}"))


def trial_count(rt: Runtime) -> int:
    trials, _ = records.collect(rt.paths, rt.settings, rt.storage_url)
    return len(trials)


def finish(rt: Runtime, meta: dict[str, Any]) -> Any:
    """Reconcile Optuna with Ray, write the final tables and metadata; returns the trial table."""
    from search.reconcile import close_orphans, pareto_numbers
    from search.study import update_meta

    trials = records.write(rt.paths, rt.settings, rt.storage_url)
    close_orphans(rt.storage_url, rt.paths.name, set(trials["trial_id"]))
    trials = records.write(rt.paths, rt.settings, rt.storage_url)
    done = int((trials["status"] == results.COMPLETE).sum())
    status = "done" if done else "failed"
    extra = {"pareto": pareto_numbers(rt.storage_url, rt.paths.name)} if rt.opts.multi_objective else {}
    update_meta(rt.paths, meta, status=status, finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra)
    return trials


def ray_init(address: str | None) -> None:
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
    # "local": always a private Ray for this driver, never a cluster some other process left running.
    ray.init(address=address or "local", runtime_env={"env_vars": env}, **kwargs)


def local_root_is_visible(root: Path) -> tuple[bool, str]:
    """Whether every node of the connected cluster can see a local root: all nodes on this machine."""
    import ray

    here = ray.util.get_node_ip_address()
    others = sorted({n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")} - {here})
    return (not others, ", ".join(others))
