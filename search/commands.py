"""What ``python -m search run | resume | list`` do, between parsing (``search.cli``) and the engines.

Every input is checked first, by building one :class:`search.sweep.Sweep`; only then is the study folder
created. A study that exists is never overwritten. While the engine runs, SIGINT and SIGTERM stop it
gracefully (:mod:`search.interrupt`) and the study says ``interrupted``; a failure of Ray itself marks it
``failed`` with the reason (or, when no trial ever started, removes the new folder so the name is free).
"""

from __future__ import annotations

import json
import shutil
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

import results
from cae.errors import StudyError, UsageError
from results.trials import search_trials
from search import controls, mlflow_log
from search.engine import Engine, get_engine
from search.interrupt import Interrupted, Interruption, exit_code, interruption_in
from search.metadata import new_meta, now, update_meta
from search.options import SweepOptions
from search.plan import Servers, plan_new, plan_resume
from search.storage import claim, close_storages, release
from search.summary import interrupted_line, resume_command, summarise, summarise_repeats
from search.sweep import Sweep, Trainable

TrainableLike = Trainable | Callable[..., None]  # a Trainable, or a plain function with no driver callbacks
NO_SERVERS = Servers()  # a stored study's own folder and a private Ray: nothing named on the command line

EXIT_FAILED = 1
FAILURE_LOG = "failure.log"  # in the study folder: the traceback of a failure of Ray or of caesweep itself


def prepare_run(
    opts: SweepOptions, trainable: TrainableLike | None = None, verbose: bool = False
) -> Callable[[], int]:
    """Check a new study completely (writing nothing) and return the run itself (``trainable``: see
    :class:`search.sweep.Trainable`)."""
    sweep = mlflow_log.plan_new(replace(plan_new(opts, trainable), verbose=verbose))
    return _closing(lambda: _run(sweep))


def _closing(work: Callable[[], int]) -> Callable[[], int]:
    """``work``, then this process's storage connections closed (:func:`search.storage.close_storages`): when a run,
    resume or confirm returns, its study is whole in ``optuna.db``, whoever called it. The CLI closes them at its
    end too; a caller in the same process (a notebook, a test) would otherwise leave the WAL log open until the
    connections are garbage-collected, and then the folder's files change under it."""

    def closing() -> int:
        try:
            return work()
        finally:
            close_storages()

    return closing


def run(opts: SweepOptions, trainable: TrainableLike | None = None, verbose: bool = False) -> int:
    """``search run``: a new study."""
    return prepare_run(opts, trainable, verbose)()


def _run(sweep: Sweep) -> int:
    opts = sweep.opts
    engine = get_engine(opts.engine)
    engine.prepare(sweep)  # joins Ray, or sets up TensorFlow's devices
    if opts.multi_objective and opts.scheduler in ("asha", "hyperband"):
        name = "ASHA" if opts.scheduler == "asha" else "Hyperband"
        print(f"note: {name} stops trials on {opts.objectives[0]} alone (the first objective); the Pareto set "
              "compares the trials that finish")
    meta = new_meta(sweep)
    sweep = mlflow_log.bind(sweep, meta)  # the study's MLflow experiment, before its folder is made
    if sweep.warm is not None:
        meta["warm_start"] = sweep.warm.record()
    if sweep.enqueued:
        meta["enqueued"] = [dict(c) for c in sweep.enqueued]
    if sweep.storage_url is not None and opts.storage:  # a shared storage: this folder's Optuna study, marked
        claim(sweep.storage_url, opts.study, meta["study_id"], [_direction(m) for m in opts.modes])
    sweep.paths.folder.mkdir(parents=True)
    with results.StudyLock(sweep.paths):
        results.write_meta(sweep.paths, meta)
        if sweep.storage_url is not None:
            if not opts.storage:
                claim(sweep.storage_url, opts.study, meta["study_id"], [_direction(m) for m in opts.modes])
            controls.apply(sweep.storage_url, opts.study, sweep.enqueued, sweep.warm)
        if sweep.warm is not None:
            print(sweep.warm.line())
        code = _execute(engine, sweep, meta, resume=False)
    if meta.get("failure") and meta["status"] == "failed" and not engine.started(sweep):
        shutil.rmtree(sweep.paths.folder, ignore_errors=True)  # its traceback was kept beside it (_failed)
        if sweep.storage_url is not None and opts.storage:
            release(sweep.storage_url, opts.study)  # the name is free in the shared storage too
    return code


def _direction(mode: str) -> str:
    return "minimize" if mode == "min" else "maximize"


def _stored(name: str, root: str | None) -> tuple[results.StudyPaths, dict[str, Any]]:
    """A stored study's folder and metadata; a study another process is running is refused first."""
    paths = results.study_paths(name, Path(root) if root and not results.is_uri(root) else None)
    meta = results.read_meta(paths)
    results.refuse_if_locked(paths)  # only a probe here, which writes nothing: the work takes the lock again
    return paths, meta


def prepare_resume(
    name: str, root: str | None, samples: int | None, verbose: bool = False,
    trainable: TrainableLike | None = None, servers: Servers = NO_SERVERS,
) -> Callable[[], int]:
    """Check that a stored study can continue (writing nothing) and return the continuation (``trainable``: the
    one the study was started with, when it was not caesweep's training)."""
    paths, meta = _stored(name, root)
    sweep, _ = plan_resume(paths, meta, root, samples, servers)
    sweep = mlflow_log.plan_stored(sweep, servers.mlflow, servers.no_mlflow)
    sweep = replace(sweep, verbose=verbose, trainable=Trainable.of(trainable or sweep.trainable))
    return _closing(lambda: _resume(sweep))


def resume(
    name: str, root: str | None, samples: int | None, verbose: bool = False,
    trainable: TrainableLike | None = None, servers: Servers = NO_SERVERS,
) -> int:
    """``search resume``: continue an interrupted study, or extend a finished one to ``samples`` trials."""
    return prepare_resume(name, root, samples, verbose, trainable, servers)()


def _resume(sweep: Sweep) -> int:
    with results.StudyLock(sweep.paths):
        meta = results.read_meta(sweep.paths)  # as it is now that this process is the study's one writer
        engine = get_engine(sweep.opts.engine)
        sweep = mlflow_log.bind(sweep, meta)
        engine.prepare(sweep)
        meta["samples"] = sweep.samples
        return _execute(engine, sweep, meta, resume=True)


def prepare_confirm(
    name: str, root: str | None, top: int, repeats: int, verbose: bool = False, trial_ids: Sequence[str] = (),
    trainable: TrainableLike | None = None, servers: Servers = NO_SERVERS, split_seeds: int | None = None,
) -> Callable[[], int]:
    """Check a confirm request (writing nothing) and return the confirm run.

    ``trial_ids``: confirm these finished search trials instead of the ``top`` best (a benchmark confirms, e.g.,
    each colour space's best configuration); ``top`` is then their number. ``trainable``: the study's, when it
    was not caesweep's training. ``split_seeds``: also train each configuration on this many further splits
    (split seeds ``split_seed + 1`` ...), with the study's training seed."""
    if top < 1 or repeats < 1:
        raise UsageError(f"--top {top} --repeats {repeats}: both must be at least 1")
    if split_seeds is not None and (isinstance(split_seeds, bool) or split_seeds < 1):
        raise UsageError(f"--split-seeds {split_seeds}: give at least 1 further split (or leave it out)")
    paths, meta = _stored(name, root)
    sweep, _ = plan_resume(paths, meta, root, None, servers)
    sweep = mlflow_log.plan_stored(sweep, servers.mlflow, servers.no_mlflow)
    if not get_engine(sweep.opts.engine).confirms:
        raise UsageError(f"study {name!r} ran on {sweep.opts.engine}; confirm runs on the Ray engine (a Ray study)")
    sweep = replace(sweep, verbose=verbose, trainable=Trainable.of(trainable or sweep.trainable))
    configs, target = repeat_configs(sweep, meta, top, repeats, trial_ids, split_seeds or 0)
    return _closing(lambda: _confirm(sweep, configs, target, top, repeats, split_seeds))


def confirm(
    name: str, root: str | None, top: int, repeats: int, verbose: bool = False,
    trainable: TrainableLike | None = None, servers: Servers = NO_SERVERS, split_seeds: int | None = None,
) -> int:
    """``search confirm``: re-train the ``top`` best finished configurations with ``repeats`` new training seeds
    each (same data split), and on ``split_seeds`` further splits, in a run of their own that no sampler is told
    about; run it again to continue."""
    return prepare_confirm(name, root, top, repeats, verbose, trainable=trainable, servers=servers,
                           split_seeds=split_seeds)()


def _confirm(
    sweep: Sweep, configs: list[dict[str, Any]], target: int, top: int, repeats: int, split_seeds: int | None
) -> int:
    paths, engine = sweep.paths, get_engine(sweep.opts.engine)
    with results.StudyLock(paths):
        meta = results.read_meta(paths)
        sweep = mlflow_log.bind(sweep, meta)
        unfinished = meta.get("confirm", {}).get("status") not in (None, "done")
        if configs or unfinished:  # every repeat trained: the tables are rebuilt without starting Ray
            engine.prepare(sweep)
        settings: dict[str, Any] = {"top": top, "repeats": repeats}
        if split_seeds:
            settings["split_seeds"] = split_seeds
        with Interruption() as stop:
            update_meta(paths, meta, confirm={**settings, "status": "running"})
            try:
                trials = engine.confirm(sweep, meta, stop, configs, target, unfinished)
                mlflow_log.reconcile(sweep, trials)
            except (Interrupted, Exception) as exc:
                if (second := interruption_in(exc)) is not None:  # stop now, the study stays resumable
                    update_meta(paths, meta, confirm={**settings, "status": "interrupted"})
                    return _confirm_interrupted(meta, paths, second.signum, settings)
                # Ray, or a bug: said in one line, traceback in failure.log
                update_meta(paths, meta, confirm={**settings, "status": "failed"})
                return _failed(sweep, meta, exc, status=meta.get("status", "done"))
            if stop.requested and stop.signum is not None:
                update_meta(paths, meta, confirm={**settings, "status": "interrupted"})
                return _confirm_interrupted(meta, paths, stop.signum, settings)
        update_meta(paths, meta, confirm={**settings, "status": "done"})
        return summarise_repeats(trials, meta, paths.folder)


def repeat_configs(
    sweep: Sweep, meta: dict[str, Any], top: int, repeats: int, trial_ids: Sequence[str] = (), split_seeds: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """The repeats still to train: each of the ``top`` best finished search trials (or the ``trial_ids`` given)
    with training seeds ``seed + 1`` ... ``seed + repeats`` on the study's split (the study's own seed trained the
    original), and with the study's seed on splits ``split_seed + 1`` ... ``split_seed + split_seeds``, minus
    those trained."""
    from search import records
    from search.trial import REPEAT_OF, SEED, SPLIT_SEED

    trials, _ = records.collect(sweep.paths, sweep.settings, sweep.storage_url)
    done = search_trials(trials)
    done = done[done["status"] == results.COMPLETE]
    if done.empty:
        raise UsageError(f"study {meta['name']!r} has no finished trial to confirm; resume it first")
    metric, mode = meta["metric"], meta["mode"]
    if top > len(done):
        print(f"note: the study has {len(done)} finished trials; confirming all of them (--top {top})")
    if trial_ids:
        unknown = sorted(set(map(str, trial_ids)) - set(done["trial_id"].astype(str)))
        if unknown:
            raise UsageError(f"study {meta['name']!r} has no finished search trial {', '.join(unknown)} to confirm")
        best = done[done["trial_id"].astype(str).isin(set(map(str, trial_ids)))]
    else:
        # Ties (equal values) go to the earlier trial: the same trials are confirmed at every call.
        best = done.sort_values([metric, "number"], ascending=[mode == "min", True], kind="stable").head(top)
    params = records.raw_params(sweep.paths, sweep.storage_url)
    base, split = int(meta.get("seed", sweep.opts.seed)), int(meta.get("split_seed", sweep.opts.split_seed))
    repeats_done = records.repeats_done(trials, split)
    wanted = [(base + k, split) for k in range(1, repeats + 1)] + [(base, split + k) for k in range(1, split_seeds + 1)]
    configs = []
    for trial_id in best["trial_id"].astype(str):
        for seed, split_seed in wanted:
            if (trial_id, seed, split_seed) not in repeats_done:
                configs.append({**params[trial_id], REPEAT_OF: trial_id, SEED: seed, SPLIT_SEED: split_seed})
    return configs, len(best) * len(wanted)


def _confirm_interrupted(meta: dict[str, Any], paths: results.StudyPaths, signum: int, settings: dict[str, Any]) -> int:
    where = "" if paths.root == results.DEFAULT_ROOT else f" --root {paths.root}"
    splits = f" --split-seeds {settings['split_seeds']}" if settings.get("split_seeds") else ""
    print(f"interrupted; continue with: python -m search confirm --study {meta['name']}{where} --top "
          f"{settings['top']} --repeats {settings['repeats']}{splits}", file=sys.stderr)
    return exit_code(signum)


def _execute(engine: Engine, sweep: Sweep, meta: dict[str, Any], resume: bool) -> int:
    """Run the engine under signal handling and record how it ended in ``study.json``."""
    folder = sweep.paths.folder
    with Interruption() as stop:
        update_meta(sweep.paths, meta, status="running", failure=None)
        try:
            trials = engine.run(sweep, meta, stop, resume)
            mlflow_log.reconcile(sweep, trials)  # what only the driver knows: pruned trials, set-aside ones
        except (Interrupted, Exception) as exc:
            if (second := interruption_in(exc)) is not None:  # the second signal: stop now, still resumable
                update_meta(sweep.paths, meta, status="interrupted")
                print(f"interrupted; continue with: {resume_command(meta, folder)}", file=sys.stderr)
                return exit_code(second.signum)
            return _failed(sweep, meta, exc, new=not resume)  # Ray, or a bug: the study says so, resumable
        if stop.requested and stop.signum is not None:
            update_meta(sweep.paths, meta, status="interrupted")
            print(interrupted_line(trials, sweep.samples, meta, folder), file=sys.stderr)
            return exit_code(stop.signum)
    done = int((trials["status"] == results.COMPLETE).sum())
    budgeted = meta.get("ended_by") == "time budget"  # its time ran out: it ended as asked, finished or not
    update_meta(sweep.paths, meta, status="done" if done or budgeted else "failed", finished_at=now())
    return summarise(trials, meta, folder)


def _failed(
    sweep: Sweep, meta: dict[str, Any], exc: BaseException, status: str = "failed", new: bool = False
) -> int:
    """Record a failure of Ray or of caesweep: the reason in ``study.json``, the traceback in ``failure.log``.

    ``new``: the study's first run. If no trial had started, :func:`_run` removes the folder so the name is
    free; its traceback is then kept beside it, as ``<root>/<study>.failure.log``, and the message says so."""
    reason = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]
    folder = sweep.paths.folder
    removed = new and not get_engine(sweep.opts.engine).started(sweep)
    log = sweep.paths.root / f"{sweep.paths.name}.{FAILURE_LOG}" if removed else folder / FAILURE_LOG
    where = f"traceback in {log}"
    try:  # the failure path must not fail in turn (a full disk): the status is recorded whatever happens here
        results.write_atomic(log, traceback.format_exc(), log.parent)
    except (OSError, StudyError) as write_error:
        where = f"its traceback could not be written ({type(write_error).__name__}: {write_error})"
    try:
        update_meta(sweep.paths, meta, status=status, failure=reason)
    except (OSError, StudyError) as write_error:
        where += f"; study.json could not be updated either ({type(write_error).__name__}: {write_error})"
    after = (f"no trial had started, so the study folder {folder} is removed and the name is free" if removed
             else f"the study is resumable: {resume_command(meta, folder)}")
    print(f"error: the sweep failed: {reason}\n({where}; {after})", file=sys.stderr)
    return EXIT_FAILED


LIST_FORMATS = ("table", "json", "csv")


def list_studies(root: str | None, fmt: str = "table") -> int:
    """``search list``: each study with its state, counts per status and best value (``fmt``: a table to read, or
    JSON / CSV for programs, as Optuna's CLI ``-f`` gives)."""
    base = Path(root) if root else results.DEFAULT_ROOT
    rows = [_study_row(name, base) for name in results.list_studies(base)]
    if fmt == "json":
        print(json.dumps({"root": str(base), "studies": rows}, indent=2))
        return 0
    flat = [{**{k: v for k, v in row.items() if k != "counts"}, **row.get("counts", {})} for row in rows]
    if fmt == "csv":
        print(pd.DataFrame(flat).to_csv(index=False), end="")
        return 0
    if not rows:
        print(f"no studies under {base}")
        return 0
    shown = [{**r, "best": "" if r.get("best") is None else f"{r['best']:.5g}"} for r in flat]
    print(pd.DataFrame(shown).fillna("").to_string(index=False))
    return 0


def _study_row(name: str, base: Path) -> dict[str, Any]:
    """One study's listing: name, status, engine, trial counts, the first objective and its best value."""
    try:
        study = results.load_study(results.study_paths(name, base))
    except StudyError as exc:
        return {"study": name, "status": f"unreadable: {exc}"}
    t, m = search_trials(study.trials), study.meta  # confirm's repeats are not search trials
    status = m.get("status")
    if status == "running" and results.lock_holder(study.paths) is None:
        status = "interrupted"  # nobody runs it: its driver died before it could say so (SIGKILL, a full disk)
    done = t[t["status"] == results.COMPLETE]
    metric, mode = str(m.get("metric", "val_mse")), str(m.get("mode", "min"))
    values = done[metric].dropna() if metric in done else pd.Series(dtype=float)
    best = None if values.empty else float(values.min() if mode == "min" else values.max())
    return {
        "study": name, "status": status, "engine": m.get("engine"), "trials": len(t),
        "counts": {s.lower(): int((t["status"] == s).sum()) for s in results.STATUSES},
        "metric": metric, "mode": mode, "best": best,
    }
