"""Where a benchmark's result lands: ``<root>/benchmarks/<name>/result.json``, ``table.md`` and PNG plots.

``result.json`` describes itself: the definition, the resolved run settings (data and why, budget, seeds,
sizes), the computed tables (as records), the findings, package versions, the git commit and the times.
``table.md`` renders the same tables and findings with :mod:`analysis.render`, so benchmark results read like
study reports.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import results
from analysis import render
from analysis.document import Block, Image
from benchmarks.definitions import RunPlan


def plan_summary(plan: RunPlan) -> dict[str, Any]:
    """The resolved settings of a run, for its result."""
    return {
        "data": plan.data, "data_note": plan.data_note, "budget": plan.budget,
        "budget_unit": plan.definition.budget_unit, "seeds": plan.seeds, "image_size": plan.image_size,
        "limit": plan.limit, "table": None if plan.table is None else str(plan.table),
        "concurrency": plan.concurrency, "workers": plan.workers, "profile": plan.profile,
        "precision": plan.precision,
    }


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON-friendly records (NaN becomes null)."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write(
    plan: RunPlan,
    result: Mapping[str, Any],
    blocks: Sequence[Block],
    pngs: Mapping[str, bytes] | None = None,
    started: float | None = None,
) -> dict[str, Any]:
    """Write result.json, table.md and the PNGs into the benchmark's folder; return the result with file names."""
    from search.metadata import git_commit, versions

    plan.folder.mkdir(parents=True, exist_ok=True)
    pngs = dict(pngs or {})
    blocks = [b for b in blocks if not isinstance(b, Image) or b.filename in pngs]  # no picture, no link
    files = ["result.json", "table.md", *pngs]
    out = {
        "benchmark": plan.name,
        "definition": plan.definition.summary(),
        "plan": plan_summary(plan),
        **result,
        "files": files,
        "folder": str(plan.folder),
        "seconds": None if started is None else time.time() - started,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        "git_commit": git_commit(),
    }
    for name, data in pngs.items():
        results.write_atomic(plan.folder / name, data)
    title = f"Benchmark {plan.name}"
    results.write_atomic(plan.folder / "table.md", render.markdown(title, list(blocks)))
    results.write_atomic(plan.folder / "result.json", json.dumps(out, indent=2, default=str) + "\n")
    print(render.terminal([b for b in blocks if not isinstance(b, Image)]), end="")
    return out


def study_command(folder: Path, studies: Sequence[str]) -> str:
    """The command that reports on a benchmark's studies."""
    return f"python -m analysis.report --root {folder} " + " ".join(f"--study {s}" for s in studies)
