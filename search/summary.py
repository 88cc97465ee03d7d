"""What the terminal shows at the end of a sweep: the counts, the top trials, and where to look next."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

import results
from results.trials import repeat_trials

EXIT_ALL_FAILED = 1


def counts(trials: pd.DataFrame) -> dict[str, int]:
    return trials["status"].value_counts().to_dict() if len(trials) else {}


def summarise(trials: pd.DataFrame, meta: dict[str, Any], folder: Path, top: int = 5) -> int:
    """Print the counts and the top trials; exit code 1 when no trial finished."""
    by_status = counts(trials)
    print(f"\nstudy {meta['name']}: {len(trials)} trials ({_counts(by_status)})")
    if meta.get("refused"):
        print(f"{meta['refused']} configurations were refused before training: over the size cap "
              "(--max-params / --max-weights-mb; never trained, told to the sampler as pruned)")
    if meta.get("ended_by") == "time budget":
        print("the study ended when its time budget was spent (--time-budget)")
    done = trials[trials["status"] == results.COMPLETE]
    if trials.empty:  # e.g. a warm start had every configuration of a finite space already: nothing to train
        print("no trial was trained here (none failed either): nothing to rank")
        return 0
    if done.empty:
        reasons = trials["error"].dropna().value_counts().head(3)
        print("no trial finished; most common reasons:")
        for reason, n in reasons.items():
            print(f"  {n} x {reason}")
        return 0 if meta.get("ended_by") == "time budget" else EXIT_ALL_FAILED
    metric, mode = meta["metric"], meta["mode"]
    best = done.sort_values(metric, ascending=mode == "min").head(top)
    print(f"top {len(best)} by {metric}:")
    print(_table(best, metric, done))
    print(f"\ntables: {folder / 'trials.csv'}, {folder / 'history.csv'}")
    print(f"report: python -m analysis.report --study {meta['name']} --root {folder.parent}")
    return 0


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none"


# Settings that may be swept but are not part of the architecture label; shown only when they vary.
SWEPT = ("task", "lr", "batch_size", "loss")


def _table(best: pd.DataFrame, metric: str, done: pd.DataFrame | None = None) -> str:
    """The top trials: their architecture, the other settings the study varied, the scores and baselines.

    A setting is shown when it varies among ``done`` (the study's finished trials); a score column that is
    empty for every shown trial (``skill_pca`` of colourisation) is left out.
    """
    done = best if done is None else done
    varied = [c for c in SWEPT if c in done.columns and done[c].astype(str).nunique() > 1]
    cols = ["number", "architecture", *varied, metric, "test_mse", "skill", "skill_pca", "params", "epochs"]
    cols = [c for c in dict.fromkeys(cols) if c in best.columns and not best[c].isna().all()]
    view = best[cols].copy()
    for col in view.columns:
        if view[col].dtype.kind == "f":
            view[col] = view[col].map(lambda v: "" if v is None or math.isnan(v) else f"{v:.4g}")
    return view.to_string(index=False)


def resume_command(meta: dict[str, Any], folder: Path) -> str:
    root = folder.parent
    where = "" if root == results.DEFAULT_ROOT else f" --root {root}"
    return f"python -m search resume --study {meta['name']}{where}"


def interrupted_line(trials: pd.DataFrame, target: int, meta: dict[str, Any], folder: Path) -> str:
    """``interrupted: 3 finished, 2 running, 1 pending; continue with: python -m search resume ...``."""
    by_status = counts(trials)
    running = by_status.get(results.RUNNING, 0) + by_status.get(results.PENDING, 0)
    finished = len(trials) - running
    pending = max(0, target - len(trials)) + by_status.get(results.PENDING, 0)
    running -= by_status.get(results.PENDING, 0)
    return (f"interrupted: {finished} finished, {running} running, {pending} pending; continue with: "
            f"{resume_command(meta, folder)}")


def summarise_repeats(trials: pd.DataFrame, meta: dict[str, Any], folder: Path) -> int:
    """Each confirmed configuration's test MSE over its fresh repeats: the selected run (the search's own, which
    won the selection and so is no evidence for itself) apart; repeats with new training seeds on the study's
    split apart from repeats on other splits, each with its mean, std and n."""
    metric = "test_mse"
    if "repeat_of" not in trials.columns:
        return 0
    repeats = repeat_trials(trials)
    repeats = repeats[repeats["status"] == results.COMPLETE]
    originals = trials.set_index("trial_id")
    split = int(meta.get("split_seed", 0))
    on_split = repeats["split_seed"].fillna(split).astype(int) == split if "split_seed" in repeats else True
    rows = []
    for original, group in repeats.groupby("repeat_of"):
        row = {"trial": original, "architecture": originals.loc[original, "architecture"],
               f"{metric} selected": f"{float(originals.loc[original, metric]):.4g}"}
        mask = on_split[group.index] if not isinstance(on_split, bool) else pd.Series(True, index=group.index)
        for label, values in (("seeds", group.loc[mask, metric]), ("splits", group.loc[~mask, metric])):
            values = values.astype(float)
            if len(values):
                std = f" +/- {values.std(ddof=1):.2g}" if len(values) > 1 else ""
                row[f"over {label}"] = f"{values.mean():.4g}{std} (n={len(values)})"
        rows.append(row)
    print(f"\nstudy {meta['name']}: {len(repeats)} repeats finished; test MSE over fresh repeats only (mean +/- std): "
          "'seeds' are new training seeds on the study's split, 'splits' other splits of the data with the study's "
          "training seed; the selected run apart")
    if rows:
        print(pd.DataFrame(rows).fillna("").to_string(index=False))
    print(f"report (means, 95 % CIs, tests): python -m analysis.report --study {meta['name']} --root {folder.parent}")
    return 0
