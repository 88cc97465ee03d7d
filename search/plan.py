"""Plan a study: one validated :class:`~search.sweep.Sweep`, everything checked before anything is written.

``search run`` and ``search resume`` build a :class:`~search.sweep.Sweep` first (:func:`plan_new`,
:func:`plan_resume`) and hand it to its engine (:mod:`search.engine`). Building it checks every input a
user can get wrong — the space, the options against the space (a grid needs a finite space), the data, the
Optuna storage (its driver importable, its database reachable), the results root and the Ray address — so a
mistake is one line and exit code 2 with nothing created. What can still fail afterwards is Ray itself; the
commands record that in ``study.json`` (:mod:`search.commands`).

A resumed study runs the space stored in its ``study.json``, never the space file on disk, and finds its
files relative to where the study folder is now (a study can be copied or moved).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import results
from cae.config import MONITORS, from_flat
from cae.data import load_dataset, parse_spec
from cae.errors import CaesweepError, StudyError, UsageError
from cae.tasks import get_task
from search.controls import read_enqueue, read_warm_start
from search.engine import get_engine
from search.options import COLORFULNESS, SweepOptions
from search.samplers import make_sampler
from search.storage import check_owner, check_storage, keep_password, refuse_taken, shown
from search.sweep import Sweep, Trainable
from search.trial import TrialSettings
from spaces import Space, load_space, space_from_dict


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
    if opts.precision is not None:
        if "precision" in axes:
            raise UsageError(f"space {space.name!r} searches the precision itself; drop --precision")
        out["precision"] = opts.precision
    if COLORFULNESS in opts.objectives:
        _check_colour_tasks(space, out.get("task", space.fixed.get("task")))
    out["seed"] = opts.seed  # one training seed for every trial: common random numbers, fair comparisons
    out["split_seed"] = opts.split_seed  # the split every search trial uses (a confirm repeat may use others)
    if opts.objectives[0] in MONITORS:
        # Early stopping and the restored weights follow the objective: the kept model is the one it ranks.
        out["monitor"] = opts.objectives[0]
    return out


def _check_colour_tasks(space: Space, fixed_task: Any) -> None:
    """val_colorfulness needs every task the space trains to be scored in RGB (not a gray reconstruction)."""
    axis = next((p for p in space.params if p.name == "task"), None)
    names = [str(t) for t in axis.choices] if axis is not None else [str(fixed_task or "reconstruct")]
    gray = [n for n in names if get_task(n).kind != "colorize" and get_task(n).out_channels != 3]
    if gray:
        raise UsageError(f"--objectives {COLORFULNESS}: task {gray[0]} has no colour to measure; use a task scored "
                         "in RGB (colorize-*, reconstruct, denoise) or drop it")


def grid_size(grid: Mapping[str, list[Any]]) -> int:
    return math.prod(len(values) for values in grid.values())


def _grid(opts: SweepOptions, space: Space) -> dict[str, list[Any]] | None:
    if opts.sampler != "grid":
        return None
    try:
        return space.grid()
    except CaesweepError as exc:
        raise UsageError(f"--sampler grid needs a finite space: {exc}, or choose another sampler") from None


def _target(opts: SweepOptions, space: Space, grid: Mapping[str, list[Any]] | None, samples: int) -> int:
    """The number of trials: a grid study runs each grid point once, at most."""
    if grid is None or samples <= grid_size(grid):
        return samples
    print(f"note: the grid of space {space.name!r} has {grid_size(grid)} points; running {grid_size(grid)} "
          f"trials instead of {samples}")
    return grid_size(grid)


def _build(
    opts: SweepOptions, space: Space, paths: results.StudyPaths, storage_url: str | None, samples: int
) -> Sweep:
    """Check the options against the space, load the data and settle the trial settings (writes nothing)."""
    extra = overrides(opts, space)
    fixed = {**space.fixed, **extra}
    from_flat({k: v for k, v in fixed.items() if k in ("task", "data", "image_size", "max_epochs", "seed")})
    grid = _grid(opts, space)
    if grid is not None:
        make_sampler("grid", opts.seed, grid=grid)  # refuses values Optuna's GridSampler cannot take
    limit = opts.limit if opts.limit is not None else fixed.get("limit")
    data = load_dataset(str(fixed["data"]), image_size=int(fixed["image_size"]), seed=opts.split_seed, limit=limit)
    local = not results.is_uri(opts.root)
    settings = TrialSettings(
        space=space, overrides=extra, gpus=opts.gpus_per_trial, cpus=opts.cpus_per_trial,
        gpu_memory=opts.gpu_memory, models_dir=str(paths.models_dir.resolve()) if local else None,
        tensorboard_dir=str(paths.tensorboard_dir.resolve()) if local else None,
    )
    max_epochs = int(fixed.get("max_epochs", 10))
    return Sweep(opts, space, data, settings, paths, storage_url, _target(opts, space, grid, samples), max_epochs,
                 grid)


def _with_controls(sweep: Sweep) -> Sweep:
    """The configurations to train first and the earlier studies' trials, read and checked (writing nothing)."""
    opts = sweep.opts
    enqueued = read_enqueue(opts.enqueue, sweep.space) if opts.enqueue else ()
    warm = None
    if opts.warm_start:
        fixed = {**sweep.space.fixed, **sweep.settings.overrides}
        warm = read_warm_start(opts.warm_start, sweep.paths.root, sweep.space, fixed, opts.objectives)
    return replace(sweep, enqueued=enqueued, warm=warm)


def local_paths(opts: SweepOptions) -> results.StudyPaths:
    """The study folder on this machine (a URI root keeps only Ray's experiment remote)."""
    root = results.DEFAULT_ROOT if results.is_uri(opts.root) else Path(opts.root)
    return results.study_paths(opts.study, root)


def plan_new(opts: SweepOptions, trainable: Trainable | Callable[..., None] | None = None) -> Sweep:
    """A new study's :class:`Sweep`; raises a :class:`CaesweepError` for any bad input, having written nothing."""
    paths = local_paths(opts)
    if paths.folder.exists():
        raise UsageError(
            f"study {opts.study!r} already exists at {paths.folder}; continue it with "
            f"`python -m search resume --study {opts.study}` or pick another --study name"
        )
    space = load_space(opts.space)
    samples = opts.samples or space.samples
    storage_url = None
    if opts.engine == "ray":
        storage_url = check_storage(opts.storage) if opts.storage else paths.default_storage_url()
        if opts.storage:  # one folder per Optuna study: a name taken in a shared storage is another folder's
            refuse_taken(opts.storage, opts.study)  # the URL as given: with its password, if it has one
    given = opts.storage
    if given:  # study.json records the options: the URL as checked, without a password
        opts = replace(opts, storage=storage_url)
    sweep = get_engine(opts.engine).check_options(_build(opts, space, paths, storage_url, samples))
    sweep = _with_controls(sweep)
    results.check_root_writable(paths.root)
    if given and opts.engine == "ray":
        keep_password(given)  # last: a warning only once nothing else can refuse the study
    return sweep if trainable is None else replace(sweep, trainable=Trainable.of(trainable))


@dataclass(frozen=True)
class Servers:
    """The servers a user names on the command line of ``resume`` or ``confirm``. A study folder records the
    Optuna storage and Ray cluster it ran with, but a folder may come from anyone: it never chooses, on its own,
    a server that caesweep connects to with the user's credentials (PGPASSWORD, ~/.pgpass) or whose cluster it
    joins. Only the study's own folder (its SQLite file, a private Ray) needs no naming."""

    storage: str | None = None  # --storage: the recorded URL again (or where that database is now)
    address: str | None = None  # --address: the cluster to join (auto, HOST:PORT, ray://HOST:PORT)
    mlflow: str | None = None  # --mlflow (or $MLFLOW_TRACKING_URI): the tracking server to log to (search.mlflow_log)
    no_mlflow: bool = False  # --no-mlflow: continue a study that logged to MLflow without logging


def _given_servers(
    paths: results.StudyPaths, meta: Mapping[str, Any], opts: SweepOptions, given: Servers
) -> tuple[str | None, SweepOptions]:
    """The storage URL and options a stored study runs with: what it records, where it may decide alone; the
    servers it names only when the user names them too (a :class:`UsageError` saying how, otherwise)."""
    name, recorded = paths.name, results.storage_url(meta, paths)
    own = recorded is None or recorded == paths.default_storage_url()
    if given.storage is not None and own:
        raise UsageError(f"study {name!r} keeps its Optuna storage in its own folder; drop --storage")
    storage_url = recorded
    if not own:
        if given.storage is None:
            raise UsageError(
                f"study {name!r} records the Optuna storage {shown(str(recorded))}; a study folder does not choose "
                f"where caesweep connects with your credentials: to use it, pass it yourself: --storage "
                f"{shown(str(recorded))}"
            )
        storage_url = check_storage(given.storage)
        keep_password(given.storage)
        opts = replace(opts, storage=storage_url)
    if opts.address is not None and given.address is None:
        raise UsageError(
            f"study {name!r} ran on the Ray cluster at {opts.address}; a study folder does not choose the cluster "
            f"caesweep joins: pass --address {opts.address} (or the cluster's address now) to continue it there"
        )
    if given.address is not None:
        opts = replace(opts, address=given.address)
    return storage_url, opts


def plan_resume(
    paths: results.StudyPaths, meta: Mapping[str, Any], root: str | None, samples: int | None,
    given: Servers | None = None,
) -> tuple[Sweep, int]:
    """A stored study's :class:`Sweep` and its current number of trials.

    The space is the one stored in ``study.json``; when the file it came from has changed since, one line
    says so and the stored space is used. ``root`` (the folder the study is found in now) replaces the root
    it was created under, so a copied or moved study never touches the original's files. A storage or cluster
    that is not the study's own is used only as ``given`` on the command line (:class:`Servers`); the Optuna
    study found there must be this folder's (:func:`search.storage.check_owner`).
    """
    opts, space, target = _stored_settings(paths, meta, samples)
    if root is None or not results.is_uri(root):
        here = str(paths.root)
        opts = replace(opts, root=here if not results.is_uri(opts.root) else opts.root)
    else:
        opts = replace(opts, root=root)
    storage_url, opts = _given_servers(paths, meta, opts, given or Servers())
    _note_changed_space(space, opts.space)
    if storage_url is not None:
        check_owner(storage_url, paths.name, meta.get("study_id"))
    engine = get_engine(opts.engine)
    sweep = engine.check_options(_build(opts, space, paths, storage_url, target))
    existing = engine.trial_count(sweep)
    if samples is not None and samples <= existing:
        raise UsageError(
            f"study {paths.name!r} already has {existing} trials; --samples {samples} would add none (give more "
            f"than {existing}, or resume without --samples to finish the trials it has)"
        )
    return sweep, existing


def _stored_settings(
    paths: results.StudyPaths, meta: Mapping[str, Any], samples: int | None
) -> tuple[SweepOptions, Space, int]:
    """The options, space and target a study.json records; a damaged record is a :class:`StudyError`."""
    try:
        opts = SweepOptions.from_dict(meta["options"])
        space = space_from_dict(meta["space"])
        target = samples if samples is not None else int(meta["samples"])
    except CaesweepError as exc:
        raise StudyError(f"{paths.meta} records settings that no longer hold ({exc}); restore it from a copy "
                         "or start a new study") from None
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise StudyError(f"{paths.meta} is damaged ({type(exc).__name__}: {str(exc)[:120]}); restore it from a "
                         "copy or start a new study") from None
    return opts, space, target


def _note_changed_space(stored: Space, source: str) -> None:
    """One line when the space file a study was started from now says something else."""
    try:
        current: dict[str, Any] | None = _content(load_space(source))
    except CaesweepError:
        current = None
    if current != _content(stored):
        state = "is gone or unreadable" if current is None else "has changed"
        print(f"note: space {source} {state} since the study started; continuing with the space stored in "
              "study.json")


def _content(space: Space) -> dict[str, Any]:
    """What a space says, without where its file lies (a fresh clone moves the shipped files)."""
    return {k: v for k, v in space.to_dict().items() if k != "path"}
