"""MLflow logging of a study's trials: ``--mlflow URI`` (or ``MLFLOW_TRACKING_URI``), the ``mlflow`` extra.

Each trial is one MLflow run in the experiment named after the study. The run holds the trial's resolved
configuration as parameters; every epoch's record (:data:`results.reports.RECORD_KEYS`, the columns of
``history.csv``) as metrics, step = epoch, with the metric ``epoch`` itself marking each step logged; at the end
the final report's test scores and baselines, its kept-epoch validation scores (``kept_val_mse`` ...), its
``epochs``, ``best_epoch`` and costs (step = the last epoch), and the kept model as the artifact
``model/model.keras``; tags ``study``, ``study_id``, ``trial_id``, ``architecture``, ``status`` (caesweep's:
RUNNING, COMPLETE, PRUNED, FAILED) and, for a ``confirm`` repeat, ``repeat_of``. The run's own status follows:
FINISHED, KILLED (pruned), FAILED.

**Logged from inside each trial**, as its TensorBoard run is (:mod:`search.tensorboard`), never through the
driver: a SIGKILL of the driver loses nothing a trial logged, and nothing waits in the driver to be sent. A
trial finds its run by its tags (``study_id`` and ``trial_id``), so a trial that Ray restarts or a resume
continues goes on in the same run; its first epoch in a process logs the checkpointed epochs the run lacks and
no step is logged twice (a step that a killed process had logged and its restart trains again keeps its first
values: MLflow has no call to replace a logged value, and a second one at the same step would draw a jump).
What only the driver knows, that the scheduler stopped a trial (it cannot say so itself) or that Ray gave up on
one, the driver sets at the end of each run from the study's trial table (:func:`reconcile`), which also deletes
(restorably) the run of a trial that a resume set aside and trains again under a new id. A driver killed
before that is made good by the next resume's end.

**What it costs a trial**: the requests go out from a thread of the trial's own, in order, while it works:
finding or making the run (two requests) while its first epoch trains, each epoch's batch while its checkpoint is
saved. They speak MLflow's REST API through the standard library (:mod:`search.mlflow_rest`): importing MLflow's
client would cost each trial worker 0.6 s of CPU and the driver 1 s, more than all the requests of a small sweep.
Before each report to Ray the trial waits until what it asked is sent (a trial the scheduler stops after that
report has logged all it reported), which by then is rarely anything; the end waits for its own requests, before
the trial keeps its final record: one batch (the last epoch with the final scores), the model's upload and the
run's end. An MLflow server that stops answering during a sweep never fails a trial: a trial says so once in its
log and logs what it missed at its next epoch.

**Credentials.** A study folder is data: ``study.json`` records that the study logs to MLflow, at which URL
(its password masked), but ``resume`` and ``confirm`` send nothing there unless the user names the server
again (``--mlflow URI`` or ``MLFLOW_TRACKING_URI``), or say ``--no-mlflow``; otherwise one line says how,
exit code 2, as for a study's ``--storage`` and ``--address``. MLflow's own ``MLFLOW_TRACKING_USERNAME``,
``MLFLOW_TRACKING_PASSWORD`` and ``MLFLOW_TRACKING_TOKEN`` (and its TLS settings) reach the trials through their
environment.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import results
from cae.config import VAL_METRICS
from cae.errors import UsageError
from results.reports import COST_KEYS, EPOCH, KEPT, RECORD_KEYS, SCORE_KEYS
from search.mlflow_rest import RestClient, RestError, Run, metric, pair, unsupported

if TYPE_CHECKING:
    import pandas as pd

    from search.sweep import Sweep

ENV = "MLFLOW_TRACKING_URI"  # MLflow's own variable: a URI in it counts as named by the user, as --mlflow
SCHEMES = ("http", "https")  # a tracking server; trials on several machines log to one place
INSTALL = "pip install 'caesweep[mlflow]'"
# Tags of a trial's run.
STUDY, STUDY_ID, TRIAL_ID, ARCHITECTURE, STATUS, REPEAT_OF, ERROR = (
    "study", "study_id", "trial_id", "architecture", "status", "repeat_of", "error")
# A trial's status in the study's table -> its MLflow run's status (a pruned trial was stopped: KILLED).
RUN_STATUS = {results.COMPLETE: "FINISHED", results.PRUNED: "KILLED", results.FAILED: "FAILED"}
MODEL_ARTIFACT = "model"  # the kept model: model/model.keras
MODEL_NAME = "model.keras"
# Final metrics besides the test scores (SCORE_KEYS) and the kept epoch's validation scores.
END_KEYS = ("epochs", "best_epoch", "eval_seconds", *COST_KEYS)
SECRETS = ("password", "token", "secret", "key", "sig", "signature", "access_token")  # masked query values
# MLflow's REST limits per log_batch call.
MAX_PARAMS, MAX_METRICS = 100, 1000
# MLflow's client retries a failed request 7 times over about 4 minutes by default (for rate-limited hosted
# servers). The check before a study starts asks once, with a short timeout: a dead URL is a one-line refusal in
# seconds. A trial retries twice (about 3 s): a server that restarts is ridden out, one that is down costs each
# epoch seconds, not minutes. A user's own MLFLOW_HTTP_REQUEST_* settings win (search.mlflow_rest).
CHECK_REQUESTS = {"retries": 0, "timeout": 10.0}
TRIAL_REQUESTS = {"retries": 2, "backoff": 1.0, "timeout": 30.0}


@dataclass(frozen=True)
class MlflowTarget:
    """Where a study's trials log: the tracking URI as the user gave it (credentials included: never recorded),
    the study's name (the experiment's) and id, and the experiment's id (set when the run starts)."""

    uri: str
    study: str
    study_id: str | None = None
    experiment_id: str | None = None


def add_arguments(parser: Any) -> None:
    """``--mlflow URI`` and ``--no-mlflow`` on ``run``, ``resume`` and ``confirm``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--mlflow", default=None, metavar="URI",
                       help=f"log every trial as a run of an MLflow tracking server (default: ${ENV}); "
                            "resume and confirm log only when it is named again")
    group.add_argument("--no-mlflow", action="store_true", help=f"log nothing to MLflow (even with ${ENV} set)")


def given(args: Any) -> str | None:
    """The tracking URI a command line names: ``--mlflow``, else ``$MLFLOW_TRACKING_URI``; None with
    ``--no-mlflow`` or neither."""
    if getattr(args, "no_mlflow", False):
        return None
    return getattr(args, "mlflow", None) or os.environ.get(ENV) or None


def masked(uri: str) -> str:
    """The URI as it may be printed or recorded: a password in it, and secrets in its query, as ``***``."""
    try:
        parts = urlsplit(uri)
        netloc = parts.netloc
        if parts.password is not None:
            netloc = f"{parts.username}:***@{netloc.rsplit('@', 1)[1]}"
        query = [(k, "***" if _secret(k) else v)
                 for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*"), ""))
    except ValueError:
        return "<unparsable URI>"


def _secret(key: str) -> bool:
    return any(word in key.lower() for word in SECRETS)


def _client(uri: str, settings: Mapping[str, Any]) -> RestClient:
    return RestClient(uri, **settings)


def _reason(exc: BaseException, uri: str) -> str:
    """An MLflow or connection error in a few words, the URI's credentials masked."""
    text = str(exc).replace(uri, masked(uri))
    for cause, short in (("Connection refused", "connection refused"), ("timed out", "timed out"),
                         ("Name or service not known", "unknown host"), ("401", "401 unauthorized"),
                         ("403", "403 forbidden")):
        if cause in text:
            return short
    return f"{type(exc).__name__}: {text.splitlines()[0][:160]}" if text else type(exc).__name__


def check(uri: str, study: str) -> None:
    """Refuse a tracking URI that cannot take the study's runs, before anything is written (a
    :class:`UsageError`): not an http(s) URL, MLflow not installed, a server that does not answer, or an
    experiment of the study's name that was deleted there. Only reads the server."""
    shown = masked(uri)
    if urlsplit(uri).scheme not in SCHEMES or not urlsplit(uri).netloc:
        raise UsageError(f"--mlflow {shown} is not an MLflow tracking server's URL; give http://HOST:PORT (start "
                         "one with `mlflow server --host 127.0.0.1 --port 5000`)")
    if any(_secret(key) for key, _ in parse_qsl(urlsplit(uri).query)):
        raise UsageError(f"--mlflow {shown} carries a secret in its query; give it in MLFLOW_TRACKING_TOKEN instead")
    if importlib.util.find_spec("mlflow") is None:  # found, not imported (search.mlflow_rest says why)
        raise UsageError(f"--mlflow needs MLflow, which is not installed: {INSTALL}")
    if unsupported():
        raise UsageError(f"{unsupported()} is set: caesweep's trials log with MLflow's REST API, which knows "
                         "MLFLOW_TRACKING_TOKEN and MLFLOW_TRACKING_USERNAME/PASSWORD only; unset it and use those")
    try:
        client = _client(uri, CHECK_REQUESTS)
        client.search_experiments(max_results=1)
        experiment = client.get_experiment_by_name(study)
    except Exception as exc:  # noqa: BLE001  (any failure of the server is the user's to fix, in one line)
        raise UsageError(f"the MLflow server at {shown} does not answer ({_reason(exc, uri)}); start it or fix "
                         f"--mlflow (or ${ENV})") from None
    if experiment is not None and experiment.lifecycle_stage != "active":
        raise UsageError(f"the MLflow experiment {study!r} at {shown} is deleted; restore it (`mlflow experiments "
                         f"restore --experiment-id {experiment.experiment_id}`) or pick another --study name")


def _with(sweep: Sweep, uri: str) -> Sweep:
    """The sweep logging to ``uri``: its options record the URI masked, its trials get it without credentials
    (the settings reach Ray's saved state), and the credentials through this process's environment."""
    settings = replace(sweep.settings, mlflow=MlflowTarget(uri=_keep_credentials(uri), study=sweep.paths.name))
    return replace(sweep, opts=replace(sweep.opts, mlflow=masked(uri)), settings=settings)


def _keep_credentials(uri: str) -> str:
    """The URI without its user and password, which go into MLflow's own variables of this process
    (``MLFLOW_TRACKING_USERNAME``, ``MLFLOW_TRACKING_PASSWORD``), inherited by the trials of a Ray it starts."""
    parts = urlsplit(uri)
    if parts.username is None:
        return uri
    os.environ["MLFLOW_TRACKING_USERNAME"] = unquote(parts.username)
    if parts.password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = unquote(parts.password)
    print("warning: the credentials in --mlflow are not stored with the study: its trials get them through "
          "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (set them on a cluster's nodes), and resume and "
          "confirm need --mlflow again", file=sys.stderr)
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, parts.query, parts.fragment))


def plan_new(sweep: Sweep) -> Sweep:
    """A new study's sweep with its MLflow logging checked (``sweep.opts.mlflow``: the URI given, or None)."""
    uri = sweep.opts.mlflow
    if uri is None:
        return sweep
    if sweep.opts.engine != "ray":
        raise UsageError(f"MLflow logging (--mlflow or ${ENV}) runs in the Ray engine's trials; drop it (or pass "
                         f"--no-mlflow) for --engine {sweep.opts.engine}, or use --engine ray")
    check(uri, sweep.paths.name)
    return _with(sweep, uri)


def plan_stored(sweep: Sweep, uri: str | None, off: bool) -> Sweep:
    """A stored study's sweep (resume, confirm) with the MLflow logging the command line asks for: ``uri``
    named again (or for the first time), or ``off`` (``--no-mlflow``). A study that logged before and names no
    server now is refused: its folder does not choose where caesweep sends data."""
    recorded, name = sweep.opts.mlflow, sweep.paths.name
    if off:
        return replace(sweep, settings=replace(sweep.settings, mlflow=None))
    if uri is None:
        if recorded:
            raise UsageError(
                f"study {name!r} logs its trials to MLflow at {recorded}; a study folder does not choose where "
                f"caesweep sends data: pass --mlflow {recorded} (with its credentials, or set ${ENV}) to go on "
                "logging there, or --no-mlflow to continue without"
            )
        return sweep
    if sweep.opts.engine != "ray":
        raise UsageError(f"study {name!r} runs on {sweep.opts.engine}, whose trials do not log to MLflow; drop "
                         "--mlflow (or pass --no-mlflow)")
    check(uri, name)
    return _with(sweep, uri)


def bind(sweep: Sweep, meta: dict[str, Any]) -> Sweep:
    """When a run starts (every check passed): the study's experiment, created if new, recorded in ``meta``
    (which the caller writes); the sweep whose trials log there."""
    target = sweep.settings.mlflow
    if target is None:
        return sweep
    bound = open_experiment(target, str(meta["study_id"]))
    shown = sweep.opts.mlflow or masked(target.uri)  # as given, its password masked
    meta["mlflow"] = {"uri": shown, "experiment": target.study, "experiment_id": bound.experiment_id}
    meta.setdefault("options", {})["mlflow"] = shown
    return replace(sweep, settings=replace(sweep.settings, mlflow=bound))


def open_experiment(target: MlflowTarget, study_id: str) -> MlflowTarget:
    """``target`` bound to its study's experiment (created if new, tagged with ``study_id``): what trials log to."""
    try:
        experiment_id = _experiment(_client(target.uri, CHECK_REQUESTS), target.study, study_id)
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"the MLflow server at {masked(target.uri)} does not answer ({_reason(exc, target.uri)}); "
                         "start it or fix --mlflow") from None
    return replace(target, study_id=study_id, experiment_id=experiment_id)


def _experiment(client: RestClient, name: str, study_id: str) -> str:
    """The id of the experiment called ``name``, created (tagged with the study's id) if there is none."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, tags={STUDY_ID: study_id})
    except RestError:  # created meanwhile (another study of this name): use it, runs are tagged apart
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def study_runs(client: RestClient, target: MlflowTarget) -> list[Run]:
    """Every active run of the study (its ``study_id`` tag) in its experiment."""
    return list(client.all_runs([str(target.experiment_id)], f"tags.{STUDY_ID} = '{target.study_id}'"))


def reconcile(sweep: Sweep, trials: pd.DataFrame) -> None:
    """Driver, at the end of a run: give each trial's run the status the study's table says it ended with (a
    pruned trial, or one Ray gave up on, cannot set it itself); once no trial is running, delete (restorably)
    the runs of trials the table no longer holds (set aside by a resume and trained again under a new id).
    A server that does not answer is one warning: the next run's end does it."""
    target = sweep.settings.mlflow
    if target is None or target.experiment_id is None or trials.empty:
        return
    statuses = dict(zip(trials["trial_id"].astype(str), trials["status"].astype(str), strict=True))
    settled = not trials["status"].isin([results.RUNNING, results.PENDING]).any()
    try:
        client = _client(target.uri, TRIAL_REQUESTS)
        for run in study_runs(client, target):
            status = statuses.get(run.tags.get(TRIAL_ID, ""))
            if status is None:
                if settled:
                    client.delete_run(run.run_id)
                continue
            wanted = RUN_STATUS.get(status)
            if run.tags.get(STATUS) != status:
                client.set_tag(run.run_id, STATUS, status)
            if wanted is not None and run.status != wanted:
                client.set_status(run.run_id, wanted)
    except Exception as exc:  # noqa: BLE001  (logging never fails a sweep)
        print(f"warning: MLflow at {masked(target.uri)}: the runs' statuses were not updated "
              f"({_reason(exc, target.uri)}); the next resume does it", file=sys.stderr)


def _numbers(values: Mapping[str, Any], keys: Sequence[str]) -> dict[str, float]:
    """The finite numbers among ``keys`` of ``values`` (bools are not numbers here)."""
    out = {}
    for key in keys:
        value = values.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


class TrialRun:
    """A trial's MLflow run, written from inside the trial (see the module's docstring).

    ``params``: the trial's resolved configuration; ``architecture``: its model's description; ``repeat_of``:
    the trial a confirm repeat repeats; ``epochs``: the epochs it trains at most (its last epoch's metrics then
    go with the final batch). Every method swallows the server's failures (one warning per process); what was not
    logged is logged at the next epoch.

    The requests are made in order by a thread of the run's own: :meth:`start` and :meth:`epochs` return at once,
    :meth:`flush` once everything asked so far is sent, :meth:`finish` and :meth:`failed` once all of it is sent
    (a restarted trial then finds it all).
    """

    def __init__(self, target: MlflowTarget, trial_id: str, params: Mapping[str, Any], architecture: str,
                 repeat_of: str | None = None, epochs: int | None = None) -> None:
        self.target = target
        self.trial_id = trial_id
        self.params = {k: v for k, v in params.items() if v is not None}
        self.tags = {STUDY: target.study, STUDY_ID: str(target.study_id), TRIAL_ID: trial_id,
                     ARCHITECTURE: architecture, STATUS: results.RUNNING}
        if repeat_of is not None:
            self.tags[REPEAT_OF] = str(repeat_of)
        self.client: RestClient | None = None
        self.run: Run | None = None
        self.status: str | None = None  # the run's MLflow status when it was found
        self.logged: set[int] = set()  # the steps (epochs) the run holds
        self.pending: list[dict[str, str]] = []  # parameters not logged yet: they go with the next batch of metrics
        self.max_epochs = epochs
        self._warned = False
        self._sender: ThreadPoolExecutor | None = None  # the thread that makes the requests, in order
        self._last: Future[None] | None = None  # the request asked last

    def _open(self) -> None:
        """Find the trial's run by its tags, or create it (two requests); a run found (a restarted or continued
        trial) tells the steps it holds. Its parameters go with the first batch (the same again on a resume)."""
        if self.run is not None:
            return
        client = _client(self.target.uri, TRIAL_REQUESTS)
        found, _ = client.search_runs(
            [str(self.target.experiment_id)], max_results=1,
            filter_string=f"tags.{STUDY_ID} = '{self.target.study_id}' AND tags.{TRIAL_ID} = '{self.trial_id}'")
        if found:
            run = found[0]
            self.logged = client.metric_steps(run.run_id, EPOCH)
        else:
            run = client.create_run(str(self.target.experiment_id), tags=self.tags, run_name=self.trial_id)
        self.pending = [pair(k, str(v)) for k, v in sorted(self.params.items())]
        self.client, self.run, self.status = client, run, run.status

    @property
    def run_id(self) -> str | None:
        return None if self.run is None else self.run.run_id

    def _opened(self) -> tuple[RestClient, Run]:
        """The client and the run, once :meth:`_open` found or made it (every request is made after that)."""
        if self.client is None or self.run is None:
            raise RuntimeError(f"the MLflow run of trial {self.trial_id} is not open")
        return self.client, self.run

    def _batch(self, metrics: Sequence[dict[str, Any]] = (), tags: Sequence[dict[str, str]] = ()) -> None:
        """Log ``metrics`` and ``tags`` with the parameters not logged yet, in as few requests as MLflow's
        limits allow (one, for a trial's epoch or end)."""
        params, self.pending = self.pending, []
        try:
            first = True
            while first or metrics or params:
                client, run = self._opened()
                client.log_batch(run.run_id, metrics=list(metrics[:MAX_METRICS]),
                                      params=params[:MAX_PARAMS], tags=list(tags) if first else [])
                metrics, params, first = metrics[MAX_METRICS:], params[MAX_PARAMS:], False
        except Exception:
            self.pending = params + self.pending  # tried again with the next batch
            raise

    def _send(self, what: str, work: Callable[[], None]) -> None:
        """Have the run's thread do ``work`` after everything asked before (started here on first use)."""
        if self._sender is None:
            self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mlflow-{self.trial_id}")
        self._last = self._sender.submit(self._safely, what, work)

    def start(self) -> None:
        """Find or make the run now, on the run's thread, while the trial prepares and trains."""
        self._send("start", lambda: None)

    def flush(self) -> None:
        """Return once everything asked of the run so far is sent (or given up on)."""
        if self._last is not None:
            self._last.result()

    def close(self) -> None:
        """Return once everything asked of the run is sent (or given up on); its thread ended."""
        if self._sender is None:
            return
        self._sender.shutdown(wait=True)
        self._sender = None

    def _safely(self, what: str, work: Callable[[], None]) -> None:
        try:
            self._open()
            work()
        except Exception as exc:  # noqa: BLE001  (an MLflow outage never fails a trial)
            if not self._warned:
                print(f"warning: MLflow logging of trial {self.trial_id} ({what}) failed: "
                      f"{_reason(exc, self.target.uri)}; the trial goes on", file=sys.stderr, flush=True)
                self._warned = True

    def __call__(self, state: Any) -> None:
        """The epoch hook (``cae.training``): log the epochs of the history that the run lacks. The last epoch
        (``epochs`` reached, or early stopping) is left to :meth:`finish`, which the trial calls next."""
        if self.max_epochs is not None and (state.epoch >= self.max_epochs or state.model.stop_training):
            return
        self.epochs(state.progress.history)

    def epochs(self, history: Sequence[Mapping[str, Any]]) -> None:
        """Log each epoch of ``history`` not logged yet (step = epoch; the metric ``epoch`` marks the step);
        returns at once."""
        records = [dict(r) for r in history]
        self._send("epochs", lambda: self._log_epochs(records))

    def _epoch_metrics(self, history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The metrics of the epochs of ``history`` the run lacks, counted as logged (a run found stopped is set
        running again first)."""
        client, run = self._opened()
        if self.status not in (None, "RUNNING"):  # continued after a stop (a paused or killed trial): running again
            client.set_status(run.run_id, "RUNNING", ended=False)
            client.set_tag(run.run_id, STATUS, results.RUNNING)
            self.status = "RUNNING"
        now = int(time.time() * 1000)
        new = [r for r in history if int(r[EPOCH]) not in self.logged]
        self.logged.update(int(r[EPOCH]) for r in new)
        return [metric(key, value, now, int(r[EPOCH]))
                for r in new for key, value in _numbers(r, (*RECORD_KEYS, EPOCH)).items()]

    def _log_epochs(self, history: Sequence[Mapping[str, Any]]) -> None:
        logged = set(self.logged)
        try:
            metrics = self._epoch_metrics(history)
            if metrics or self.pending:
                self._batch(metrics)
        except Exception:
            self.logged = logged  # tried again with the next epoch
            raise

    def finish(self, final: Mapping[str, Any], model: Path | None, history: Sequence[Mapping[str, Any]] = (),
               again: bool = False) -> None:
        """The trial's end: its final and kept-epoch scores (step = its last epoch), the kept model as
        ``model/model.keras``, status COMPLETE / FINISHED. ``again``: a restarted trial repeating its final
        report, which logs only what a run not yet FINISHED lacks. Returns once all of it is sent."""
        records = [dict(r) for r in history]
        self._send("final", lambda: self._finish(final, model, records, again))
        self.close()

    def _finish(self, final: Mapping[str, Any], model: Path | None, history: Sequence[Mapping[str, Any]],
                again: bool) -> None:
        client, run = self._opened()
        if again and self.status == "FINISHED":
            return
        logged = set(self.logged)
        step = int(final.get("epochs", final.get(EPOCH, 0)))
        keys = (*SCORE_KEYS, *(KEPT + m for m in VAL_METRICS), *END_KEYS)
        now = int(time.time() * 1000)
        metrics = [metric(k, v, now, step) for k, v in _numbers(final, keys).items()]
        tags = [pair(STATUS, results.COMPLETE)]
        if final.get("architecture"):
            tags.append(pair(ARCHITECTURE, str(final["architecture"])))
        try:  # the epochs not sent yet and the final scores: one batch
            self._batch([*self._epoch_metrics(history), *metrics], tags)
        except Exception:
            self.logged = logged
            raise
        if model is not None and model.is_file():
            self._log_model(model)
        client.set_status(run.run_id, "FINISHED")
        self.status = "FINISHED"

    def _log_model(self, model: Path) -> None:
        """The kept model as ``model/model.keras`` whatever the file's own name."""
        client, run = self._opened()
        if model.name == MODEL_NAME:
            client.log_artifact(run, model, MODEL_ARTIFACT)
            return
        with tempfile.TemporaryDirectory(prefix="caesweep-mlflow-") as folder:
            copy = Path(folder) / MODEL_NAME
            shutil.copyfile(model, copy)
            client.log_artifact(run, copy, MODEL_ARTIFACT)

    def failed(self, reason: str) -> None:
        """The trial failed (a diverged loss, an exception): its reason as the tag ``error``, status FAILED."""
        def work() -> None:
            self._batch(tags=[pair(ERROR, reason[:5000]), pair(STATUS, results.FAILED)])
            client, run = self._opened()
            client.set_status(run.run_id, "FAILED")

        self._send("failure", work)
        self.close()


def trial_run(target: MlflowTarget | None, trial_id: str, params: Mapping[str, Any], architecture: str,
              repeat_of: str | None = None, epochs: int | None = None) -> TrialRun | None:
    """The trial's MLflow run when its study logs to MLflow (None otherwise)."""
    if target is None or target.experiment_id is None:
        return None
    return TrialRun(target, trial_id, params, architecture, repeat_of, epochs)
