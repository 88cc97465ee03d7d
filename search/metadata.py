"""A study's ``study.json``: what it records when the study is created, and how it is updated.

It is written through ``results`` (which owns the layout, and writes atomically). The study's status is one
of ``running``, ``interrupted`` (a signal stopped it; ``resume`` continues), ``failed`` (no trial finished,
or Ray itself failed: the reason is in ``failure``; ``resume`` continues) and ``done``.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import results
from search.options import SweepOptions
from search.storage import meta_storage
from search.sweep import Sweep

_PACKAGES = ("caesweep", "tensorflow", "keras", "ray", "optuna", "keras-tuner", "numpy", "pandas", "scikit-image")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str | None:
    """The commit of the caesweep checkout that ran the study (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def new_meta(sweep: Sweep) -> dict[str, Any]:
    """study.json for a new study: everything needed to resume it and to describe it in a report."""
    opts, space = sweep.opts, sweep.space
    fixed = dict(space.fixed)
    return {
        "name": opts.study,
        "study_id": uuid.uuid4().hex,  # this folder's identity, also marked on its Optuna study
        "engine": opts.engine,
        "space_name": space.name,
        "space": space.to_dict(),
        "roles": space.roles(),
        "params": sorted(k for k, role in space.roles().items() if role != "fixed"),
        "task": opts.task or fixed.get("task"),
        "data": opts.data or fixed.get("data"),
        "image_size": fixed.get("image_size"),
        "sampler": opts.kt_tuner if opts.engine == "keras-tuner" else opts.sampler,
        "scheduler": _scheduler(opts),
        "metric": opts.objectives[0],
        "mode": opts.modes[0],
        "objectives": [{"metric": m, "mode": d} for m, d in zip(opts.objectives, opts.modes, strict=True)],
        "samples": sweep.samples,
        "max_epochs": sweep.max_epochs,
        "seed": opts.seed,
        "split_seed": opts.split_seed,
        "storage": meta_storage(sweep.storage_url, sweep.paths),
        "options": opts.to_dict(),
        "status": "running",
        "runs": [],
        "versions": versions(),
        "git_commit": git_commit(),
        "created_at": now(),
        "updated_at": now(),
    }


def _scheduler(opts: SweepOptions) -> str:
    if opts.engine == "keras-tuner":
        return "hyperband" if opts.kt_tuner == "hyperband" else "none"
    return opts.scheduler


def update_meta(paths: results.StudyPaths, meta: dict[str, Any], **changes: Any) -> dict[str, Any]:
    meta.update(changes)
    meta["updated_at"] = now()
    results.write_meta(paths, meta)
    return meta
