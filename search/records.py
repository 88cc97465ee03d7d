"""Build the study's trial table and history from what Ray and Optuna recorded.

The tables are *derived* data: they are rebuilt from the Ray trial folders (``result.json``, one JSON line
per report, and ``error.txt``) and the Optuna storage (trial number and state). A line cut off by a killed
driver is skipped, so a half-written file is never read as complete, and rebuilding at any time (during a sweep,
at the end, on resume) gives the same tables. During a sweep a :class:`TableCache` re-reads only the trials
that changed, so keeping the tables current costs the same at trial 2,000 as at trial 20; ``resume`` (a new
process) rebuilds them whole.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

import results
from cae.config import VAL_METRICS, from_flat
from cae.errors import CaesweepError, StudyError
from results import reports
from results.trials import repeat_trials
from search.searcher import FAIL_REASON_ATTR, RAY_TRIAL_ATTR
from search.storage import open_storage
from search.trial import REPEAT_OF, SEED, SPLIT_SEED, TrialSettings, resolve_config

_OPTUNA_STATUS = {
    "COMPLETE": results.COMPLETE,
    "PRUNED": results.PRUNED,
    "FAIL": results.FAILED,
    "RUNNING": results.RUNNING,
    "WAITING": results.PENDING,
}
REPEAT = "repeat"  # a confirm run's trial config holds its configuration under this key
_HISTORY_KEYS = results.HISTORY_COLUMNS[1:]


MAX_RESULT_BYTES = 256 * 2**20  # a trial's result.json: a line per epoch (a few KB each); more is not ours


def _text(path: Path, limit: int) -> str | None:
    """A study file's text, read only when it is a regular file within ``limit`` (None: missing, or a link, a FIFO
    or too large: what a trial's row shows as unreadable rather than hang on or follow)."""
    try:
        return results.read_limited(path, limit).decode("utf-8", errors="replace")
    except (OSError, StudyError):
        return None


def read_result_lines(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line of a Ray ``result.json``; a torn last line is dropped."""
    text = _text(path, MAX_RESULT_BYTES)
    if text is None:
        return []
    lines = []
    for raw in text.splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return [line for line in lines if isinstance(line, dict)]


def optuna_states(storage_url: str | None, study_name: str) -> dict[str, dict[str, Any]]:
    """Ray trial id -> Optuna number, status and failure reason, read from the study's storage."""
    study = _load_study(storage_url, study_name)
    return {} if study is None else states_of(study.get_trials(deepcopy=False))


def _load_study(storage_url: str | None, study_name: str) -> optuna.Study | None:
    if storage_url is None:
        return None
    try:
        return optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    except KeyError:
        return None


def states_of(trials: Iterable[optuna.trial.FrozenTrial]) -> dict[str, dict[str, Any]]:
    """Ray trial id -> Optuna number, status, failure reason and parameters, of the Optuna trials given."""
    out = {}
    for t in trials:
        ray_id = t.user_attrs.get(RAY_TRIAL_ATTR)
        if ray_id:
            out[ray_id] = {
                "number": t.number,
                "status": _OPTUNA_STATUS[t.state.name],
                "error": t.user_attrs.get(FAIL_REASON_ATTR),
                "params": t.params,
            }
    return out


def trial_folders(ray_dir: Path) -> Iterable[Path]:
    """Every trial folder of every Ray experiment of the study: its search runs and its confirm runs."""
    if not ray_dir.is_dir():
        return []
    found = [*ray_dir.glob("run-*/trial_*"), *ray_dir.glob("confirm-*/trial_*")]
    return sorted(p for p in found if p.is_dir())


def _status(last: reports.Report | None, error_file: bool) -> str:
    """Status from the trial's own reports, when Optuna has not been told (or the engine has no Optuna)."""
    if isinstance(last, reports.FailedReport) or error_file:
        return results.FAILED
    if isinstance(last, reports.FinalReport):
        return results.COMPLETE
    return results.RUNNING


def read_params(path: Path, optuna_info: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's sampled parameters from Ray's ``params.json``; from Optuna when that file is missing (a trial
    that failed before it started) or torn (a driver killed while Ray wrote it)."""
    try:
        params = json.loads(_text(path, 1 << 20) or "null")
    except ValueError:
        params = None
    if isinstance(params, dict) and isinstance(params.get(REPEAT), dict):
        params = params[REPEAT]  # a confirm run's trial: the listed configuration
    return params if isinstance(params, dict) else dict(optuna_info.get("params", {}))


def trial_dirname(trial: Any) -> str:
    """Ray trial folder names that carry the trial id (``TuneConfig.trial_dirname_creator``)."""
    return f"trial_{trial.trial_id}"


def trial_row(
    folder: Path, settings: TrialSettings, optuna_info: Mapping[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One trial's table row and history rows, from its Ray folder (its reports read by :mod:`results.reports`)."""
    lines = read_result_lines(folder / "result.json")
    read = [r for r in map(reports.read, lines) if r is not None]
    last = read[-1] if read else None
    epochs = [e for e in map(reports.epoch_of, read) if e is not None]
    trial_id = folder.name.removeprefix("trial_")
    info = optuna_info.get(trial_id, {})
    params = read_params(folder / "params.json", info)
    error_txt = folder / "error.txt"
    status = info.get("status") or _status(last, error_txt.exists())
    if status == results.RUNNING:
        status = _status(last, error_txt.exists())  # ended, but Optuna not told yet (driver stopped between)
    row: dict[str, Any] = {"trial_id": trial_id, "number": info.get("number", -1), "status": status}
    row["repeat_of"] = params.get(REPEAT_OF)  # a confirm run's repeat of a search trial; None otherwise
    row.update(config_columns(settings, params))
    if epochs:
        row.update(epochs[-1].costs)
        row.update({metric: epochs[-1].kept.get(metric) for metric in VAL_METRICS})  # the kept epoch's
        row["epochs"] = max(e.epoch for e in epochs)
        row["policy"] = epochs[-1].policy
    if isinstance(last, reports.FinalReport):
        row.update(last.scores, epochs=last.epochs, best_epoch=last.best_epoch, eval_seconds=last.eval_seconds)
    row["error"] = (last.error if isinstance(last, reports.FailedReport) else None) or _error_text(error_txt) \
        or info.get("error")
    if status == results.PRUNED and not row["error"]:
        row["error"] = f"stopped early by the scheduler after epoch {row.get('epochs', '?')}"
    if lines:
        row["started_at"] = _iso(lines[0].get("timestamp", 0) - lines[0].get("time_this_iter_s", 0))
        ended = status != results.RUNNING
        finished = last.finished_at if isinstance(last, reports.FinalReport) else None
        row["finished_at"] = _iso(finished or lines[-1].get("timestamp")) if ended else None
        row["node"] = last.node if last is not None else None
    history = [{"trial_id": trial_id, "epoch": e.epoch, **{k: e.record.get(k) for k in _HISTORY_KEYS if k != "epoch"}}
               for e in _dedupe(epochs)]
    return row, history


def _dedupe(epochs: list[reports.EpochReport]) -> list[reports.EpochReport]:
    """One history row per epoch: a retried or resumed trial re-reports epochs; keep the latest."""
    by_epoch = {e.epoch: e for e in epochs}
    return [by_epoch[k] for k in sorted(by_epoch)]


def config_columns(settings: TrialSettings, params: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameter columns of a trial's row: its resolved flat config (``epochs`` as ``max_epochs``)."""
    try:
        resolved = resolve_config(settings, dict(params))
        run = from_flat(resolved)
    except CaesweepError:  # a config the space refuses still gets a row (it will have failed)
        return {k: v for k, v in params.items() if not isinstance(v, (dict, list))}
    flat = run.to_flat()
    if SPLIT_SEED in resolved:  # which split the trial's images come from (not part of the model's config)
        flat[SPLIT_SEED] = resolved[SPLIT_SEED]
    flat["max_epochs"] = flat.pop("epochs")
    flat["architecture"] = run.model.describe()
    return flat


def _error_text(path: Path) -> str | None:
    if not path.exists() and not path.is_symlink():
        return None
    text = _text(path, 16 * 2**20)
    if text is None:
        return "the trial's error.txt is not a readable file"
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "the trial's worker failed"


def _iso(ts: Any) -> str | None:
    if ts is None or not isinstance(ts, (int, float)) or not math.isfinite(ts) or ts <= 0:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts))


def repeats_done(trials: pd.DataFrame, split_seed: int) -> set[tuple[str, int, int]]:
    """(trial repeated, training seed, split seed) of every repeat in the table, whatever its status; a repeat
    recorded before repeats had a split seed was on the study's split, ``split_seed``."""
    repeats = repeat_trials(trials)
    splits = repeats[SPLIT_SEED] if SPLIT_SEED in repeats else pd.Series(split_seed, index=repeats.index)
    splits = splits.fillna(split_seed)
    return {(str(r), int(s), int(k)) for r, s, k in zip(repeats["repeat_of"], repeats[SEED], splits, strict=True)}


def raw_params(paths: results.StudyPaths, storage_url: str | None) -> dict[str, dict[str, Any]]:
    """Each trial's sampled values as the space gave them (what a trainable takes), by trial id."""
    info = optuna_states(storage_url, paths.name)
    return {
        folder.name.removeprefix("trial_"): read_params(folder / "params.json", info.get(
            folder.name.removeprefix("trial_"), {}))
        for folder in trial_folders(paths.ray_dir)
    }


def collect(
    paths: results.StudyPaths, settings: TrialSettings, storage_url: str | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rebuild (trials, history) from the study's Ray folders and Optuna storage: every trial read anew (the
    recovery path: what ``resume`` and ``finish`` of a new process do)."""
    return TableCache(paths, settings, storage_url).collect()


def write(paths: results.StudyPaths, settings: TrialSettings, storage_url: str | None) -> pd.DataFrame:
    return TableCache(paths, settings, storage_url).write()


_Fingerprint = tuple[Any, ...]


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class TableCache:
    """The study's tables, kept current as a sweep runs at a cost that does not grow with the study.

    A trial's row and history are read again only when one of its Ray files (``result.json``, ``params.json``,
    ``error.txt``: size and modification time) or its Optuna record (number, status, reason, parameters)
    changed since the last :meth:`collect`; the Optuna study is loaded once, through Optuna's cached storage,
    which reads back only new and unfinished trials. A new cache reads everything: the full rebuild, which
    gives the same tables (tests/search/test_scale_tables.py checks it after a sweep).
    """

    def __init__(self, paths: results.StudyPaths, settings: TrialSettings, storage_url: str | None) -> None:
        self.paths = paths
        self.settings = settings
        self.storage_url = storage_url
        self._study: optuna.Study | None = None
        self._rows: dict[Path, tuple[_Fingerprint, dict[str, Any], list[dict[str, Any]]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks, this cache with them: the pickle starts empty (no storage, no rows)."""
        return {**self.__dict__, "_study": None, "_rows": {}}

    def optuna_states(self) -> dict[str, dict[str, Any]]:
        if self._study is None:
            self._study = _load_study(self.storage_url, self.paths.name)
        return {} if self._study is None else states_of(self._study.get_trials(deepcopy=False))

    def collect(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(trials, history) as :func:`collect` builds them, re-reading only the trials that changed."""
        info = self.optuna_states()
        rows: dict[str, dict[str, Any]] = {}
        history: list[dict[str, Any]] = []
        for folder in trial_folders(self.paths.ray_dir):
            trial_id = folder.name.removeprefix("trial_")
            fingerprint = (_stat(folder / "result.json"), _stat(folder / "params.json"),
                           _stat(folder / "error.txt"), info.get(trial_id))
            cached = self._rows.get(folder)
            if cached is None or cached[0] != fingerprint:
                cached = (fingerprint, *trial_row(folder, self.settings, info))
                self._rows[folder] = cached
            if trial_id in rows:
                continue  # the same trial seen in an older run folder: keep the first (they agree)
            rows[trial_id] = cached[1]
            history.extend(cached[2])
        return results.trials_frame(rows.values()), results.history_frame(history)

    def write(self) -> pd.DataFrame:
        """Collect and write trials.csv and history.csv; returns the trial table."""
        trials, history = self.collect()
        results.write_tables(self.paths, trials, history)
        return trials
