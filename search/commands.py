"""What ``python -m search run | resume | list`` do, between parsing (``search.cli``) and the engines.

Everything a user can get wrong is checked before the study folder is created or Ray is started: the
space, the options, the data, the study name, the results root. A study that exists is never overwritten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

import results
from cae.config import from_flat
from cae.data import Dataset, load_dataset, parse_spec
from cae.errors import StudyError, UsageError
from cae.tasks import get_task
from search.options import SweepOptions
from search.study import new_meta
from search.trial import TrialSettings
from spaces import Space, load_space

EXIT_ALL_FAILED = 1


def overrides(opts: SweepOptions, space: Space) -> dict[str, Any]:
    """The CLI settings that replace the space's fixed ones (checked against the space's axes)."""
    out: dict[str, Any] = {}
    axes = {p.name for p in space.params}
    if opts.task is not None:
        if "task" in axes:
            raise UsageError(f"space {space.name!r} searches the task itself; drop --task")
        get_task(opts.task)
        out["task"] = opts.task
    if opts.data is not None:
        parse_spec(opts.data)
        out["data"] = opts.data
    if opts.max_epochs is not None:
        out["max_epochs"] = opts.max_epochs
    out["seed"] = opts.seed  # one training seed for every trial: common random numbers, fair comparisons
    return out


@dataclass(frozen=True)
class Setup:
    """What every engine needs: the space, the CLI overrides, the data and the trial settings."""

    space: Space
    data: Dataset
    settings: TrialSettings
    max_epochs: int


def setup(opts: SweepOptions, paths: results.StudyPaths) -> Setup:
    """Load the space and the data and check the settings (all validation happens here, nothing is written)."""
    space = load_space(opts.space)
    extra = overrides(opts, space)
    fixed = {**space.fixed, **extra}
    from_flat({k: v for k, v in fixed.items() if k in ("task", "data", "image_size", "max_epochs", "seed")})
    limit = opts.limit if opts.limit is not None else fixed.get("limit")
    data = load_dataset(str(fixed["data"]), image_size=int(fixed["image_size"]), seed=opts.seed, limit=limit)
    models_dir = None if results.is_uri(opts.root) else str(paths.models_dir.resolve())
    settings = TrialSettings(
        space=space,
        overrides=extra,
        gpus=opts.gpus_per_trial,
        cpus=opts.cpus_per_trial,
        gpu_memory=opts.gpu_memory,
        models_dir=models_dir,
    )
    return Setup(space, data, settings, int(fixed.get("max_epochs", 10)))


def runtime(
    opts: SweepOptions, paths: results.StudyPaths, storage_url: str, samples: int, trainable: Any = None
) -> Any:
    """The Ray engine's bundle: :func:`setup` plus the Optuna storage and the study's target trial count."""
    from search.ray_engine import Runtime

    s = setup(opts, paths)
    rt = Runtime(opts, s.space, s.data, s.settings, paths, storage_url, samples, s.max_epochs)
    return rt if trainable is None else replace(rt, trainable=trainable)


def local_paths(opts: SweepOptions) -> results.StudyPaths:
    """The study folder on this machine (a URI root keeps only Ray's experiment remote)."""
    root = results.DEFAULT_ROOT if results.is_uri(opts.root) else Path(opts.root)
    return results.study_paths(opts.study, root)


def run(opts: SweepOptions, trainable: Any = None) -> int:
    """``search run``: a new study (``trainable``: see :class:`search.ray_engine.Runtime`)."""
    paths = local_paths(opts)
    if paths.folder.exists():
        raise StudyError(
            f"study {opts.study!r} already exists at {paths.folder}; continue it with "
            f"`python -m search resume --study {opts.study}` or pick another --study name"
        )
    space = load_space(opts.space)
    samples = opts.samples or space.samples
    storage_url = opts.storage or paths.default_storage_url()
    if opts.engine == "keras-tuner":
        from search.kt_engine import run_keras_tuner

        results.check_root_writable(paths.root)
        return run_keras_tuner(opts, paths, samples)
    rt = runtime(opts, paths, storage_url, samples, trainable)
    results.check_root_writable(paths.root)  # after every input is known good: a typo creates nothing
    _check_cluster(opts)
    if opts.multi_objective and opts.scheduler == "asha":
        print(f"note: ASHA is off for the multi-objective study ({', '.join(opts.objectives)}); every trial runs "
              "to its end so the Pareto set compares finished models")
    paths.folder.mkdir(parents=True)
    with results.StudyLock(paths):
        meta = new_meta(opts, rt.space, storage_url, samples, rt.max_epochs)
        results.write_meta(paths, meta)
        return _sweep(rt, meta, resume=False)


def resume(name: str, root: str | None, samples: int | None) -> int:
    """``search resume``: continue an interrupted study, or extend a finished one to ``samples`` trials."""
    paths = results.study_paths(name, Path(root) if root and not results.is_uri(root) else root)
    meta = results.read_meta(paths)
    opts = SweepOptions.from_dict(meta["options"])
    if root is not None:
        opts = replace(opts, root=root)
    target = samples or int(meta["samples"])
    with results.StudyLock(paths):
        if opts.engine == "keras-tuner":
            from search.kt_engine import resume_keras_tuner

            return resume_keras_tuner(opts, paths, meta, target)
        rt = runtime(opts, paths, str(meta["storage"]), target)
        _check_cluster(opts)
        from search.ray_engine import trial_count

        existing = trial_count(rt)
        if target < existing:
            raise UsageError(f"study {name!r} already has {existing} trials; --samples must be at least that")
        meta["samples"] = target
        return _sweep(rt, meta, resume=True)


def _check_cluster(opts: SweepOptions) -> None:
    """Join the cluster, and refuse a local results root that other machines of it cannot see."""
    from search.ray_engine import local_root_is_visible, ray_init

    ray_init(opts.address)
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


def _sweep(rt: Any, meta: dict[str, Any], resume: bool) -> int:
    from search.ray_engine import finish, restore_run, start_run, trial_count

    if resume:
        restore_run(rt, meta)
    missing = rt.samples - (trial_count(rt) if resume else 0)  # a new study's folder holds no trial yet
    if missing > 0:
        start_run(rt, meta, missing)
    trials = finish(rt, meta)
    return summarise(trials, meta, rt.paths.folder)


def summarise(trials: pd.DataFrame, meta: dict[str, Any], folder: Path, top: int = 5) -> int:
    """Print the counts and the top trials; exit code 1 when no trial finished."""
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    print(f"\nstudy {meta['name']}: {len(trials)} trials ({_counts(counts)})")
    done = trials[trials["status"] == results.COMPLETE]
    if done.empty:
        reasons = trials["error"].dropna().value_counts().head(3)
        print("no trial finished; most common reasons:")
        for reason, n in reasons.items():
            print(f"  {n} x {reason}")
        return EXIT_ALL_FAILED
    metric, mode = meta["metric"], meta["mode"]
    best = done.sort_values(metric, ascending=mode == "min").head(top)
    print(f"top {len(best)} by {metric}:")
    print(_table(best, metric))
    print(f"\ntables: {folder / 'trials.csv'}, {folder / 'history.csv'}")
    print(f"report: python -m analysis.report --study {meta['name']} --root {folder.parent}")
    return 0


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none"


def _table(best: pd.DataFrame, metric: str) -> str:
    cols = ["number", "architecture", "lr", "batch_size", "loss", metric, "test_mse", "skill", "params", "epochs"]
    cols = [c for c in dict.fromkeys(cols) if c in best.columns]
    view = best[cols].copy()
    for col in view.columns:
        if view[col].dtype.kind == "f":
            view[col] = view[col].map(lambda v: "" if v is None or math.isnan(v) else f"{v:.4g}")
    return view.to_string(index=False)


def list_studies(root: str | None) -> int:
    """``search list``: each study with its state and best value."""
    base = Path(root) if root else results.DEFAULT_ROOT
    names = results.list_studies(base)
    if not names:
        print(f"no studies under {base}")
        return 0
    rows: list[dict[str, Any]] = []
    for name in names:
        try:
            study = results.load_study(results.study_paths(name, base))
        except StudyError as exc:
            rows.append({"study": name, "state": f"unreadable: {exc}"})
            continue
        t, m = study.trials, study.meta
        done = t[t["status"] == results.COMPLETE]
        best = done[m["metric"]].min() if m["mode"] == "min" else done[m["metric"]].max()
        rows.append({
            "study": name, "state": m.get("status"), "engine": m.get("engine"), "trials": len(t),
            **{s.lower(): int((t["status"] == s).sum()) for s in results.STATUSES},
            f"best {m['metric']}": "" if done.empty else f"{best:.5g}",
        })
    print(pd.DataFrame(rows).fillna("").to_string(index=False))
    return 0
