"""One Ray Tune trial: configure the device share, train with ``cae.training``, report and checkpoint per epoch.

Each epoch reports its metrics with a checkpoint (weights, optimizer state, history, early-stopping state);
Ray keeps the latest and the best, so a trial whose worker dies continues from its last epoch. The last
epoch's report carries ``final=True`` and the test scores; a trial that ends without it was stopped by the
scheduler (pruned). Failures are results, not crashes: a diverging loss or an exception ends the trial with
``failed=True`` and the reason, and the sweep goes on. Only a dead process is retried by Ray.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import results
from cae.data import Dataset
from cae.epochs import at_best_epoch
from cae.errors import StudyError
from results.reports import EpochReport, FailedReport, FinalReport
from search.gpu import configure_devices
from spaces import Space

# In a confirm run's trial config: the trial it repeats, its training seed and its split seed (which images are
# in train, val and test: a repeat on another split measures the variance the split adds).
REPEAT_OF, SEED, SPLIT_SEED = "repeat_of", "seed", "split_seed"
FINAL_FILE = "final.json"  # in a trial's last checkpoint: its final report, to repeat after a restart
SCRATCH_PREFIX = "caesweep-trial-"  # + "<pid>-": a trial process's scratch folders under the temp directory
SCRATCH_MIN_AGE_S = 600.0  # a scratch folder lives for the seconds a checkpoint takes to write


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a study shares (sent once through Ray's object store with the dataset)."""

    space: Space
    overrides: dict[str, Any] = field(default_factory=dict)  # CLI settings that beat the space's fixed ones
    gpus: float = 0.0
    cpus: float = 1.0
    gpu_memory: str = "limit"
    models_dir: str | None = None  # where the final model of each trial is saved (local roots only)
    tensorboard_dir: str | None = None  # where each trial's TensorBoard run goes (local roots only)
    # The wall time (time.time()) after which a trial stops at its next epoch end without a final report, so it is
    # told as pruned: a study's hard time budget (--time-budget-hard); None: no such stop.
    stop_at: float | None = None
    # Where each trial logs its MLflow run (search.mlflow_log.MlflowTarget, with the URI's credentials); None: not.
    mlflow: Any = None


class BudgetSpent(Exception):  # noqa: N818  (not an error: the study's time is up)
    """The study's hard time budget is spent: the trial stops after the epoch it just reported."""


def resolve_config(settings: TrialSettings, params: dict[str, Any]) -> dict[str, Any]:
    """Sampled params -> the flat trial config (the space's fixed settings, then the CLI's overrides).

    A repeat made by ``search confirm`` carries the trial it repeats and its own training seed (and split seed)
    next to the sampled values; they replace the study's.
    """
    values = dict(params)
    repeat = {key: values.pop(key) for key in (REPEAT_OF, SEED, SPLIT_SEED) if key in values}
    flat = settings.space.resolve(values)
    flat.update(settings.overrides)
    for key in (SEED, SPLIT_SEED):
        if key in repeat:
            flat[key] = int(repeat[key])
    return flat


def data_for(data: Dataset | Mapping[int, Dataset], flat: Mapping[str, Any]) -> Dataset:
    """A trial's dataset: the study's, or, for a confirm run over several splits (a mapping of split seed to
    dataset, loaded once by the driver), the one of the trial's split seed."""
    if isinstance(data, Mapping):
        return data[int(flat[SPLIT_SEED])]
    return data


def node_label() -> str:
    """``ip/node-id-prefix``: unique per Ray node even when several run on one machine."""
    import ray

    context = ray.get_runtime_context()
    return f"{ray.util.get_node_ip_address()}/{context.get_node_id()[:8]}"


def scratch_folder() -> tempfile.TemporaryDirectory:
    """A temporary folder for one checkpoint or model before Ray copies it, named after this process."""
    return tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")


def remove_orphaned_scratch(folder: str | None = None, min_age_s: float = SCRATCH_MIN_AGE_S) -> list[Path]:
    """Remove the scratch folders of trial processes that no longer run; return what was removed.

    A worker killed while it wrote a checkpoint (SIGKILL, the out-of-memory killer, a lost node) cannot remove
    its scratch folder: a model and its weights, megabytes each time. The next trial on the machine removes
    them. A folder is kept while its process runs (or a new process took its number), and while it is younger
    than ``min_age_s`` (a process of another PID namespace sharing the temp directory may still write it).
    """
    removed = []
    now = time.time()
    for path in Path(folder or tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        pid = path.name.removeprefix(SCRATCH_PREFIX).split("-", 1)[0]
        try:
            old = now - path.stat().st_mtime >= min_age_s and path.is_dir()
        except OSError:  # removed meanwhile by another trial
            continue
        if old and pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # PermissionError: another user's process, running
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


@contextlib.contextmanager
def _restored(checkpoint: Any) -> Iterator[str | None]:
    if checkpoint is None:
        yield None
    else:
        with checkpoint.as_directory() as folder:
            yield folder


_DROPPED_SEEN = 0  # the worker's pool's count of models let go, at its last unfreeze


def _clear_session(pool: Any = None) -> None:
    """Start a reused worker's trial from a clean Keras state, in constant time.

    TensorFlow's eager caches are kept (:func:`cae.runtime.clear_session`): the traced steps of the models ``pool``
    keeps, and the prediction and SSIM functions, stay instantiated for the next trial. Clearing the session
    collects the previous trial's garbage. What survives is live (imports, caches, the models ``pool`` keeps) or
    the traced step graphs TensorFlow keeps alive after each ``fit`` (an upstream leak, keras-team/tf-keras#286,
    ~24,000 objects per trial), which no collection can free; ``gc.freeze`` moves all of it out of the collector's
    view, so later collections scan only what the next trial creates (measured: the collection stayed at 0.01 s
    over 12 trials instead of growing by 0.015 s per trial). A model the pool has let go since was frozen with the
    rest, and a frozen cycle is never collected: then the objects are unfrozen first, and that one collection
    frees it (a model of 111 MB would otherwise stay in memory for the worker's life).
    """
    global _DROPPED_SEEN
    if pool is not None and pool.dropped != _DROPPED_SEEN:
        gc.unfreeze()
        _DROPPED_SEEN = pool.dropped
    from cae.runtime import clear_session

    clear_session()
    gc.freeze()


_POOL: Any = None  # this worker's cae.training.ModelPool, made by its first trial


def _pool() -> Any:
    """The compiled models this worker keeps for its next trials of the same shape (:class:`cae.training.ModelPool`:
    a trial that takes one skips compiling and tracing, and trains as it would on a fresh model)."""
    global _POOL
    if _POOL is None:
        from cae.training import ModelPool

        _POOL = ModelPool()
    return _POOL


def run_trial(config: dict[str, Any], data: Dataset | Mapping[int, Dataset], settings: TrialSettings) -> None:
    """The Ray Tune function trainable (bound to the data and settings with ``tune.with_parameters``)."""
    configure_devices(settings.gpus, settings.cpus, settings.gpu_memory)  # before TensorFlow starts
    from ray import tune

    from cae.checkpoint import MODEL_FILE
    from cae.config import from_flat
    from cae.tasks import get_task
    from cae.training import DivergedError, prepare, train

    started = time.time()
    tracker = None  # the trial's MLflow run, once its configuration is known
    _clear_session(_pool())
    remove_orphaned_scratch()
    node = node_label()
    try:
        flat = resolve_config(settings, config)
        run = from_flat(flat)
        prepared = prepare(get_task(run.train.task), data_for(data, flat), run.train.noise, run.train.seed)
        trial_id = tune.get_context().get_trial_id()
        logger = _tensorboard(settings.tensorboard_dir, trial_id, config, run)
        tracker = _mlflow(settings.mlflow, trial_id, flat, config, run)
        if tracker is not None:
            tracker.start()  # MLflow's import and the run's lookup go on while the trial prepares and trains
        reporter = _Reporter(run, prepared, node, settings.models_dir, tune, started, logger, settings.stop_at,
                             tracker)
        finished = finished_record(settings.models_dir, trial_id)
        if finished is not None:
            # Finished before the driver stopped, even if Ray had not registered its last checkpoint yet:
            # report the same final result; train and score nothing.
            if tracker is not None:
                tracker.finish(finished, Path(str(settings.models_dir)) / f"{trial_id}.keras", again=True)
            tune.report(finished)
            return
        with _restored(tune.get_checkpoint()) as resume_from:
            if resume_from is not None and (Path(resume_from) / FINAL_FILE).exists():
                final = json.loads((Path(resume_from) / FINAL_FILE).read_text())
                if tracker is not None:
                    tracker.finish(final, Path(resume_from) / MODEL_FILE, again=True)
                tune.report(final)
                return
            # Logged before it is checkpointed (a step logged by a process killed before its checkpoint is not
            # logged again by the one that trains it again).
            hooks = [hook for hook in (logger, tracker, reporter) if hook is not None]
            result = train(run, prepared, hooks=hooks, resume_from=resume_from, evaluate_test=False,
                           pool=_pool())
        if not reporter.final_sent:
            # Resumed after its last epoch had been checkpointed: report the final result once.
            reporter.send_final(result)
    except BudgetSpent:
        return  # the study's hard time budget: ended without its final report, so it is told as pruned
    except DivergedError as exc:
        if tracker is not None:
            tracker.failed(str(exc))
        tune.report(FailedReport(str(exc), node, extra={"seconds_total": time.time() - started}).to_dict())
    except Exception as exc:  # a failed trial is a row with its reason, never a crashed sweep
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        if tracker is not None:
            tracker.failed(reason)
        tune.report(FailedReport(reason, node, traceback=traceback.format_exc()[-4000:]).to_dict())


def keep_final_record(models_dir: str | None, trial_id: str, final: dict[str, Any]) -> None:
    """Save a trial's final result as ``models/<trial_id>.json`` (local roots only), atomically and last: once it
    exists the trial is finished for good, and a restart of it reports this record again (:func:`finished_record`)
    instead of training. Every trainable that can be restarted keeps its final result so."""
    if models_dir is not None:  # no link followed from the study folder down (results.files)
        results.write_atomic(Path(models_dir) / f"{trial_id}.json", json.dumps(final), Path(models_dir).parent)


def finished_record(models_dir: str | None, trial_id: str) -> dict[str, Any] | None:
    """The final result a trial saved next to its kept model (``models/<trial_id>.json``), if any."""
    if models_dir is None:
        return None
    path = Path(models_dir) / f"{trial_id}.json"
    try:  # a regular file of at most 1 MiB (a FIFO or a link there would hang or mislead a restarted trial)
        record = json.loads(results.read_limited(path, 1 << 20))
    except (OSError, StudyError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("final") else None


def _mlflow(target: Any, trial_id: str, flat: dict[str, Any], config: dict[str, Any], run: Any) -> Any:
    """The trial's MLflow run (search.mlflow_log) when its study logs to MLflow: parameters are the resolved
    configuration."""
    if target is None:
        return None
    from search.mlflow_log import trial_run

    return trial_run(target, trial_id, flat, run.model.describe(), config.get(REPEAT_OF), run.train.epochs)


def _tensorboard(folder: str | None, trial_id: str, config: dict[str, Any], run: Any) -> Any:
    """The trial's TensorBoard epoch logger (its hyperparameters are the sampled values and the architecture)."""
    if folder is None:
        return None
    from search.tensorboard import EpochLogger

    return EpochLogger(Path(folder) / trial_id, trial_id, {**config, "architecture": run.model.describe()})


class _Reporter:
    """The epoch hook: report metrics plus a checkpoint; on the last epoch add the test scores.

    It also keeps the trial's own cost outside training, reported with every epoch: ``setup_seconds`` (trial
    start to the first epoch's report, less that epoch's training and validation: clearing the session, encoding
    the data, building the model, the start of ``fit``), ``validation_seconds`` (the epochs' validation passes,
    this one's included), ``checkpoint_seconds`` (saving and reporting the epochs' checkpoints) and, at the end,
    ``eval_seconds``.
    """

    def __init__(
        self, run: Any, prepared: Any, node: str, models_dir: str | None, tune: Any, started: float, logger: Any,
        stop_at: float | None = None, tracker: Any = None,
    ) -> None:
        self.run = run
        self.tracker = tracker  # the trial's MLflow run (None: the study does not log to MLflow)
        self.stop_at = stop_at
        self.logger = logger  # the trial's TensorBoard logger (None: no local study folder)
        self.prepared = prepared
        self.node = node
        self.models_dir = models_dir
        self.tune = tune
        self.started = started
        self.setup_seconds: float | None = None
        self.validation_seconds = 0.0
        self.checkpoint_seconds = 0.0
        self.final_sent = False

    def __call__(self, state: Any) -> None:
        from cae import checkpoint

        entered = time.time()
        self.validation_seconds += state.validation_seconds
        if self.setup_seconds is None:  # the first epoch of this process (a resumed trial: its restore too)
            self.setup_seconds = max(0.0, entered - state.record["seconds"] - state.validation_seconds - self.started)
        epoch = self._epoch(
            state.record, state.progress.history, int(state.model.count_params()), state.progress.best_epoch,
            state.precision,
        )
        report: EpochReport | FinalReport = epoch
        last = state.epoch >= self.run.train.epochs or state.model.stop_training
        if last:
            if state.best_weights is not None:
                state.model.set_weights(state.best_weights)  # score and keep the epoch early stopping keeps
            report = self._final(epoch, state.model, state.progress.epoch, state.progress.best_epoch)
            self._log_final(report)
        metrics = report.to_dict()
        with scratch_folder() as folder:
            # Light but the last (the kept model is saved whole): resumed by this trial's run, which rebuilds it.
            checkpoint.save(folder, state.model, state.progress, state.best_weights, full=last)
            if last:
                (Path(folder) / FINAL_FILE).write_text(json.dumps(metrics))
                if self.tracker is not None:  # before the final record, after which a restart reports only
                    self.tracker.finish(metrics, Path(folder) / checkpoint.MODEL_FILE, history=state.progress.history)
                self._keep(Path(folder) / checkpoint.MODEL_FILE, metrics)
            if self.tracker is not None:  # what is reported is logged: the scheduler may stop the trial at it
                self.tracker.flush()
            self.tune.report(metrics, checkpoint=self.tune.Checkpoint.from_directory(folder))
        eval_seconds = report.eval_seconds if isinstance(report, FinalReport) else None
        self.checkpoint_seconds += time.time() - entered - (eval_seconds or 0.0)
        self.final_sent = self.final_sent or last
        if not last and self.stop_at is not None and time.time() >= self.stop_at:
            raise BudgetSpent

    def send_final(self, result: Any) -> None:
        """Report the final result of a run that had nothing left to train."""
        last = dict(result.history[-1]) if result.history else {"epoch": result.epochs}
        epoch = self._epoch(last, result.history, result.params, result.best_epoch, result.precision)
        report = self._final(epoch, result.model, result.epochs, result.best_epoch)
        self._log_final(report)
        metrics = report.to_dict()
        with scratch_folder() as folder:
            result.model.save(Path(folder) / "model.keras")
            if self.tracker is not None:
                self.tracker.finish(metrics, Path(folder) / "model.keras", history=result.history)
            self._keep(Path(folder) / "model.keras", metrics)
        self.tune.report(metrics)
        self.final_sent = True

    def _epoch(
        self, record: dict[str, float], history: list[dict[str, float]], params: int, best_epoch: int, policy: str
    ) -> EpochReport:
        """This epoch's record, the validation metrics of the epoch kept so far (what the trial's row and Optuna
        get when it ends) and the trial's costs."""
        seconds = sum(r["seconds"] for r in history)
        return EpochReport(
            epoch=int(record["epoch"]),
            record={k: v for k, v in record.items() if k != "epoch"},
            kept=at_best_epoch(history, best_epoch),
            costs={
                "params": params,
                "train_seconds": seconds,
                "images_per_second": len(self.prepared.train.x) * len(history) / seconds if seconds > 0 else 0.0,
                "setup_seconds": self.setup_seconds,
                "validation_seconds": self.validation_seconds,  # this process's, this epoch's included
                "checkpoint_seconds": self.checkpoint_seconds,  # the epochs before this one (this one's is not over)
            },
            node=self.node,
            policy=policy,
        )

    def _log_final(self, report: FinalReport) -> None:
        """Close the trial's HParams session with its final scores and the kept epoch's val metrics."""
        if self.logger is None:
            return
        from search.tensorboard import write_final

        write_final(self.logger.folder, self.logger.trial_id, self.logger.hparams,
                    {**report.to_dict(), **report.last.kept}, step=report.epochs)

    def _keep(self, saved_model: Path, final: dict[str, Any]) -> None:
        """Copy the kept model into the study's models/ folder with its final result (local roots only).

        The result is written last and atomically: once it exists, the trial is finished for good, and a
        restart of this trial (a driver stopped before Ray registered the last checkpoint) reports it again
        instead of training (:func:`run_trial`).
        """
        if self.models_dir is not None:
            folder, trial_id = Path(self.models_dir), self.tune.get_context().get_trial_id()
            # Whole or not at all, and through no link: a copy cut short must never leave a partial model.
            results.copy_atomic(saved_model, folder / f"{trial_id}.keras", folder.parent)
            keep_final_record(self.models_dir, trial_id, final)

    def _final(self, last: EpochReport, model: Any, epochs: int, best_epoch: int) -> FinalReport:
        """Test scores of the kept weights: what makes a result final."""
        from cae.training import evaluate

        started = time.time()
        scores = evaluate(model, self.prepared, self.run.model)  # with PCA at the model's latent size
        return FinalReport(
            last=last, epochs=epochs, best_epoch=best_epoch, scores=scores,
            stopped_early=epochs < self.run.train.epochs, finished_at=time.time(),
            architecture=self.run.model.describe(), eval_seconds=time.time() - started,
        )
