"""Run a benchmark's studies through the real sweep (``search.commands``) and read them back (``results``).

Every study a benchmark runs is an ordinary study folder under ``<root>/benchmarks/<name>/``, with its space
file next to it in ``spaces/``, so ``python -m analysis.report --root <root>/benchmarks/<name> --study S``
reads it and ``python -m search resume`` can continue it. Running a benchmark again reuses its finished
studies (same options, same space), resumes an interrupted training study, and restarts an interrupted replay
study (replays are cheap, and ``search resume`` would train instead of replaying).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

import results
from benchmarks.definitions import RunPlan, write_space
from cae.errors import BenchmarkError
from search import commands
from search.options import SweepOptions
from search.sweep import Trainable
from spaces import Space


def sweep_options(plan: RunPlan, space: Space, study: str, **changes: Any) -> SweepOptions:
    """The options of one study: one trial at a time on every CPU by default, so seconds per epoch compare."""
    concurrency = plan.concurrency or 1
    cpus = max(1.0, float(os.cpu_count() or 1) / concurrency)
    values: dict[str, Any] = {
        "study": study,
        "space": str((plan.folder / "spaces" / f"{study}.yaml").resolve()),
        "sampler": "grid",
        "scheduler": "none",
        "samples": space.samples,
        "concurrency": concurrency,
        "cpus_per_trial": cpus,
        "root": str(plan.folder),
        **changes,
    }
    return SweepOptions(**values)


def run_study(
    opts: SweepOptions, space: Space, trainable: Trainable | Callable[..., None] | None = None, rerun: bool = False
) -> results.Study:
    """Run (or reuse, or continue) the study ``opts`` describes; return it read back through ``results``.

    ``rerun``: a replay whose measurements come from the run itself starts again from scratch every time."""
    paths = results.study_paths(opts.study, opts.root)
    if paths.folder.exists():
        meta = results.read_meta(paths)
        if _plain(meta.get("options")) != _plain(opts.to_dict()) or _plain(_body(meta["space"])) != _plain(
            _body(space.to_dict())
        ):
            raise BenchmarkError(
                f"{paths.folder} holds a study run with other settings; pass another --root or delete that folder"
            )
        if (rerun or meta.get("status") != "done") and trainable is not None:
            shutil.rmtree(paths.folder)  # an interrupted replay: run it again from the start
            return run_study(opts, space, trainable)
        code = commands.resume(opts.study, opts.root, None) if meta.get("status") != "done" else 0
    else:
        write_space(space, paths.root / "spaces" / f"{opts.study}.yaml")
        code = commands.run(opts, trainable=trainable)
    if code != 0 and results.read_meta(paths).get("status") == "interrupted":
        raise BenchmarkError(f"study {opts.study} was interrupted; run the benchmark again to continue it")
    study = results.load_study(paths)
    if not (study.trials["status"] == results.COMPLETE).any():
        reasons = study.trials["error"].dropna().value_counts().head(2)
        raise BenchmarkError(
            f"study {opts.study}: no trial finished ({'; '.join(map(str, reasons.index)) or 'no reason recorded'})"
        )
    return study


def confirm_study(opts: SweepOptions, trial_ids: Sequence[str], seeds: int) -> results.Study:
    """Train each of ``trial_ids`` (finished search trials of the study ``opts`` names) with ``seeds - 1`` more
    training seeds through ``search confirm`` (same data split; repeats already trained are kept), and return the
    study read back. ``seeds`` 1: nothing to train."""
    paths = results.study_paths(opts.study, opts.root)
    if seeds > 1 and trial_ids:
        code = commands.prepare_confirm(opts.study, opts.root, len(trial_ids), seeds - 1, trial_ids=trial_ids)()
        if code != 0:
            raise BenchmarkError(f"study {opts.study}: the confirm run stopped (exit code {code}); run the benchmark "
                                 "again to continue it")
    return results.load_study(paths)


def seed_runs(trials: pd.DataFrame, trial_id: str) -> pd.DataFrame:
    """The finished runs of one configuration: the search trial ``trial_id`` and its confirm repeats."""
    done = trials[trials["status"] == results.COMPLETE]
    repeat_of = done["repeat_of"].astype(str) if "repeat_of" in done else pd.Series("", index=done.index)
    return done[(done["trial_id"].astype(str) == str(trial_id)) | (repeat_of == str(trial_id))]


def _body(space: dict[str, Any]) -> dict[str, Any]:
    """What defines a space's trials (not its name or where its file lives)."""
    return {k: space.get(k) for k in ("fixed", "params", "samples")}


def _plain(value: Any) -> Any:
    """JSON's view of a value (tuples become lists), so stored and new settings compare as equals."""
    return json.loads(json.dumps(value, default=str))
