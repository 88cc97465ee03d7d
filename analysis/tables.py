"""The numbers of a report as plain pandas tables: leaderboard, status, comparisons, Pareto sets, correlations.

Every function takes the trial (or history) table of :func:`results.load_study` and returns a new
DataFrame; nothing here draws or formats. Metric direction comes from :func:`analysis.metrics.mode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis import inference
from analysis.metrics import METRICS, is_test_metric, label
from cae.config import from_flat
from cae.errors import CaesweepError
from results import COMPLETE, FAILED, PRUNED, STATUSES
from results.trials import is_repeat

MAX_LEVELS = 6  # a numeric hyperparameter with more distinct values than this is grouped into bins
BINS = 4  # quantile bins for such a hyperparameter (log-spaced values such as lr are binned in log space)
REASON_CHARS = 100  # failure reasons are cut to their first line and this many characters

# The leaderboard: identity, what was trained, then scores, the baselines and cost. Reconstruction is judged
# against PCA at the model's code size (pca_mse, skill_pca); pca_comparison says in words whether that
# comparison is compression-matched. skill is against the task's trivial baseline.
# test_mse is the ranked run's own score and test_mse_ci95 (when the trial table has it) the half-width of its
# 95 % interval over the test split's images (skill_ci95 the same for skill). After it come the configuration's
# statistics over fresh training seeds (see seed_statistics): NaN, and n_seeds 0, for a configuration that was
# not re-trained with new seeds.
# test_colorfulness and truth_colorfulness (tasks scored in RGB) say how colourful the predictions are next to the
# truth (Hasler-Susstrunk, 0-255): MSE rewards grey-ish colourisations.
# selection says, on the top row, how that row was chosen; pixel_range is the range every MSE column is on.
LEADERBOARD = (
    "rank", "trial_id", "architecture", "lr", "batch_size", "loss", "val_mse", "test_mse", "test_mse_ci95",
    "test_mse_seed_mean", "test_mse_seed_std", "test_mse_seed_ci95", "n_seeds", "p_vs_best", "vs_best",
    "test_psnr", "test_ssim", "test_colorfulness", "truth_colorfulness", "pca_mse", "skill_pca", "pca_comparison",
    "skill", "skill_ci95", "params", "epochs", "train_seconds", "selection", "pixel_range",
)
MATCHED = "compression-matched"
NOT_MATCHED = "not compression-matched (skip connections bypass the bottleneck)"
# Seed repeats (``python -m search confirm``) re-train a configuration with fresh training seeds on the same
# split; their mean and Student-t confidence interval come from those fresh runs only. The selected run (the
# search's own, which won the ranking) is shown apart as <score>_selected: its place at the top was chosen on
# its scores, so it is biased low (the winner's curse) and is no evidence for itself. The seeds are compared on
# the report's metric when it is a test-split score, else on test_mse: validation scores chose the
# configurations.
CONFIDENCE = 0.95
# What an interval over repeats includes (seed_statistics' variance column): the same split keeps the test images,
# so repeats on one split vary by the training seed alone.
SEED_VARIANCE, SPLIT_VARIANCE = "training seed", "training seed and data split"
SEED_SCORES = ("test_mse", "test_psnr", "test_ssim", "native_mse", "skill", "skill_pca")
BEST, NO_DIFFERENCE, WORSE = inference.BEST, inference.NO_DIFFERENCE, inference.WORSE
# Every MSE in a trial table is on pixel values in [-1, 1] (RGB; a native colour space's channels are scaled
# to the same range): 4x the MSE of the same error on [0, 1], the range most papers use.
PIXEL_RANGE = "[-1, 1]"
# Hyperparameters that the architecture label already shows.
IN_ARCHITECTURE = ("filters", "depth", "kernel_size", "latent_dim", "convs_per_level", "batch_norm", "skip", "upsample")
_MODEL_KEYS = (*IN_ARCHITECTURE, "activation", "image_size")


def prepare_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The trial table with numeric metric columns and an architecture label on every row that can have one."""
    df = trials.copy()
    for column in [*METRICS, *(c for c in df.columns if str(c).endswith("_ci95"))]:
        if column in df:
            df[column] = pd.to_numeric(df[column], errors="coerce")
    if "pca_matched" in df:
        df["pca_matched"] = df["pca_matched"].map(_flag).astype(object)
    if len(df):
        missing = df["architecture"].isna()
        df["architecture"] = df["architecture"].astype(object)
        df.loc[missing, "architecture"] = [_architecture(row) for _, row in df[missing].iterrows()]
    return df


def _flag(value: Any) -> bool | None:
    """A boolean cell as read back from a CSV (True, "True", 1.0, ...) as True / False, or None when empty."""
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    if value is None or pd.isna(value):
        return None
    return bool(value)


def pca_comparison(pca_mse: Any, matched: Any) -> str:
    """In words, whether a trial's PCA comparison compares equal code sizes ("" without a PCA baseline)."""
    flag = _flag(matched)
    if pd.isna(pca_mse) or flag is None:
        return ""
    return MATCHED if flag else NOT_MATCHED


def _architecture(row: pd.Series) -> str | None:
    flat = {k: row[k] for k in _MODEL_KEYS if k in row.index and pd.notna(row[k])}
    if "filters" not in flat:
        return None
    try:
        return from_flat(flat).model.describe()
    except CaesweepError:
        return None


def finished(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The COMPLETE search trials that report ``metric``: the only rows that are ranked or compared (seed
    repeats are not trials of the search: they only measure their original's configuration again)."""
    done = trials[(trials["status"] == COMPLETE) & trials[metric].notna() & ~is_repeat(trials)]
    return done.reset_index(drop=True)


def search_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials the search ran (every row that is not a seed repeat, :mod:`results.trials`)."""
    return trials[~is_repeat(trials)].reset_index(drop=True)


def repeat_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The seed repeats of ``python -m search confirm``, in any status."""
    return trials[is_repeat(trials)].reset_index(drop=True)


def seed_metric(metric: str) -> str:
    """The score the seeds of a configuration are compared on: ``metric`` if it is a test-split score, else
    test_mse (see :data:`SEED_SCORES`)."""
    return metric if metric in SEED_SCORES else "test_mse"


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean, sample standard deviation (n - 1) and the half-width of the two-sided ``confidence`` interval of
    the mean, ``t(1 - (1 - confidence) / 2, n - 1) * std / sqrt(n)``; NaN all three for fewer than 2 values
    (one seed says nothing about the spread between seeds)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n < 2:
        return float("nan"), float("nan"), float("nan")
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(1 - (1 - confidence) / 2, n - 1)) * std / float(np.sqrt(n))
    return float(x.mean()), std, half


def seed_columns(score: str) -> list[str]:
    """The columns of ``score``'s statistics over fresh training seeds: mean, std and 95 % CI half-width."""
    return [f"{score}_seed_mean", f"{score}_seed_std", f"{score}_seed_ci95"]


def seed_statistics(done: pd.DataFrame, repeats: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """One row per finished search trial that has seed repeats: its configuration's scores over fresh seeds.

    The selected run (the search trial itself) won its place on its own scores, so it is no evidence for
    itself: the statistics come from its COMPLETE repeats that report test_mse (and the seed metric,
    :func:`seed_metric`) only, and ``n_seeds`` counts them. Columns: rank (the search's rank by ``metric``),
    trial_id, architecture, seeds (the fresh training seeds), n_seeds, ``<score>_selected`` (the selected run's
    own score), ``<score>_seed_mean/_std/_ci95`` (:func:`mean_ci`; NaN below 2 seeds) for test_mse and the seed
    metric, variance (what the interval includes, :func:`repeat_variance`), then p_vs_best and vs_best
    (:func:`analysis.inference.against_best` on the seed metric: Welch's t-test of each configuration's fresh
    seeds against those of the best mean, Holm-adjusted over the K - 1 comparisons). Rows follow the search's
    ranking.
    """
    basis = seed_metric(metric)
    scores = list(dict.fromkeys(["test_mse", basis]))
    selected = [f"{s}_selected" for s in scores]
    stats_columns = [c for s in scores for c in seed_columns(s)]
    columns = ["rank", "trial_id", "architecture", "seeds", "n_seeds", *selected, *stats_columns]
    ranked = rank(done, metric, mode)
    complete = repeats[repeats["status"] == COMPLETE]
    rows, groups, variances = [], [], []
    for position, original in enumerate(ranked.to_dict("records"), start=1):
        if not (repeats["repeat_of"].astype(str) == str(original["trial_id"])).any():
            continue
        group = complete[complete["repeat_of"].astype(str) == str(original["trial_id"])].dropna(subset=scores)
        seeds = ", ".join(_seed_text(v) for v in group["seed"]) if "seed" in group else ""
        row: list[Any] = [position, original["trial_id"], original["architecture"], seeds, len(group)]
        row += [original.get(s, np.nan) for s in scores]
        for score in scores:
            row += mean_ci(group[score].tolist())
        rows.append(row)
        groups.append(group[basis].tolist())
        variances.append(repeat_variance(group))
    table = pd.DataFrame(rows, columns=columns).astype({c: float for c in columns[5:]} | {"n_seeds": int})
    table["vs_best"], table["p_vs_best"] = inference.against_best(groups, mode)
    table["variance"] = variances
    return table[[*columns, "variance", "p_vs_best", "vs_best"]]


def repeat_variance(group: pd.DataFrame) -> str:
    """What the spread of a configuration's repeats includes: the training seed, and the data split when the
    repeats were trained on several split seeds (a ``split_seed`` column with more than one value)."""
    if "split_seed" in group and group["split_seed"].nunique(dropna=True) > 1:
        return SPLIT_VARIANCE
    return SEED_VARIANCE


def _seed_text(value: Any) -> str:
    return "?" if pd.isna(value) else str(int(value)) if float(value).is_integer() else str(value)


def selection(n_done: int, metric: str) -> str:
    """How the leaderboard's top row was chosen, e.g. ``"best of 14 finished trials by val_mse, one training seed
    each"`` (a test metric says that choosing on it makes the top score optimistic)."""
    text = f"best of {n_done} finished trial{'' if n_done == 1 else 's'} by {metric}, one training seed each"
    return text + ("; selected on the test split, so its test score is optimistic" if is_test_metric(metric) else "")


def test_metric_note(metric: str) -> str:
    """``"ranked by a test metric: ..."``, what ranking on the held-out split means; "" for any other metric."""
    if not is_test_metric(metric):
        return ""
    return (f"ranked by a test metric: {label(metric)} is measured on the held-out test split, so choosing the "
            "best by it makes the top scores optimistic (the best of many noisy test scores is low by luck as "
            "well as by merit), and no held-out number is left to check them; rank by a validation metric "
            "(val_mse) to keep the test split for the final estimate.")


def status_counts(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """How many trials are in each status, and how many finished without ``metric`` (columns status, n)."""
    counts = trials["status"].value_counts()
    rows = [(s, int(counts.get(s, 0))) for s in STATUSES]
    rows += [(s, int(n)) for s, n in counts.items() if s not in STATUSES]
    no_metric = int(((trials["status"] == COMPLETE) & trials[metric].isna()).sum())
    if no_metric:
        rows.append((f"{COMPLETE} without {metric}", no_metric))
    return pd.DataFrame(rows, columns=["status", "n"])


def failure_reasons(trials: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """The ``top`` most common reasons per FAILED / PRUNED status (columns status, reason, n)."""
    bad = trials[trials["status"].isin([FAILED, PRUNED])]
    reasons = bad["error"].map(_reason)
    table = (
        pd.DataFrame({"status": bad["status"], "reason": reasons})
        .value_counts()
        .rename("n")
        .reset_index()
        .sort_values(["status", "n", "reason"], ascending=[True, False, True], kind="stable")
    )
    return table.groupby("status", sort=False).head(top).reset_index(drop=True)


def _reason(error: Any) -> str:
    if not isinstance(error, str) or not error.strip():
        return "(no reason recorded)"
    line = error.strip().splitlines()[0]
    return line if len(line) <= REASON_CHARS else line[: REASON_CHARS - 3] + "..."


def rank(done: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """``done`` sorted best first by ``metric`` (ties keep trial order)."""
    return done.sort_values(metric, ascending=mode == "min", kind="stable").reset_index(drop=True)


def leaderboard(
    done: pd.DataFrame, metric: str, mode: str, top: int, extra: Sequence[str] = (), seeds: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The ``top`` trials of ``done``: rank, trial, architecture, training settings, scores and cost.

    ``extra`` names hyperparameters to show after ``loss`` (those that vary but the architecture label
    does not show, e.g. ``activation`` or ``task``); ``metric`` is added when it is not a standard column.
    ``seeds`` (:func:`seed_statistics`) adds each configuration's statistics over fresh training seeds after its
    score, with p_vs_best and vs_best; a trial without repeats has n_seeds 0, NaN statistics and an empty
    vs_best. The top row's ``selection`` says how it was chosen (:func:`selection`); ``pixel_range`` is the
    range of every MSE column.
    """
    ranked = rank(done, metric, mode).head(top).copy()
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    basis = seed_metric(metric)
    if seeds is None:
        seeds = seed_statistics(done, done.head(0).assign(repeat_of=pd.Series(dtype=object)), metric, mode)
    stat_columns = [c for s in dict.fromkeys(["test_mse", basis]) for c in seed_columns(s)]
    ranked = ranked.merge(seeds[["trial_id", "n_seeds", *stat_columns, "p_vs_best", "vs_best"]], on="trial_id",
                          how="left")
    ranked["n_seeds"] = ranked["n_seeds"].fillna(0).astype(int)
    ranked["vs_best"] = ranked["vs_best"].fillna("")
    ranked["selection"] = [selection(len(done), metric) if r == 1 else "" for r in ranked["rank"]]
    ranked["pixel_range"] = PIXEL_RANGE
    if "pca_mse" in ranked and "pca_matched" in ranked:
        pairs = zip(ranked["pca_mse"], ranked["pca_matched"], strict=True)
        ranked["pca_comparison"] = [pca_comparison(mse, matched) for mse, matched in pairs]
    columns = list(LEADERBOARD)
    at = columns.index("loss") + 1
    columns[at:at] = [c for c in extra if c not in columns]
    if metric not in columns:
        columns.insert(columns.index("val_mse"), metric)
    if basis != "test_mse":
        at = columns.index(basis) + 1
        columns[at:at] = seed_columns(basis)
    return ranked[[c for c in columns if c in ranked.columns]].reset_index(drop=True)


def varying(done: pd.DataFrame, params: Sequence[str]) -> list[str]:
    """The hyperparameters of ``params`` that take more than one value among ``done``."""
    return [p for p in params if p in done.columns and done[p].nunique(dropna=True) > 1]


def levels(values: pd.Series) -> pd.Series:
    """The groups a hyperparameter's values fall into: the values themselves, or ordered bins for a numeric
    hyperparameter with more than :data:`MAX_LEVELS` distinct values (log-spaced when they span a decade)."""
    if not _is_number(values) or values.nunique() <= MAX_LEVELS:
        return values
    positive = bool((values.dropna() > 0).all())
    log = positive and values.max() / values.min() >= 10
    key = np.log10(values) if log else values
    codes, edges = pd.qcut(key, q=BINS, labels=False, retbins=True, duplicates="drop")
    edges = 10**edges if log else edges
    labels = [f"{edges[i]:.2g}..{edges[i + 1]:.2g}" for i in range(len(edges) - 1)]
    codes = np.where(np.isnan(codes), -1, codes).astype(int)
    return pd.Series(pd.Categorical.from_codes(codes, categories=labels, ordered=True), index=values.index)


def group_summary(
    done: pd.DataFrame, param: str, metric: str, mode: str, pruned: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``metric`` per value (or bin) of ``param``: mean, std, n and the best value (one row per level), how many
    ``pruned`` trials had that value (they are not in its mean: a scheduler stops the trials that look worse
    early, so a value with many pruned trials looks better in the mean than its trials were), and each value
    against the one with the best mean: ``p_vs_best`` and ``vs_best`` (Welch's t-test, Holm-adjusted over the
    K - 1 comparisons, :func:`analysis.inference.against_best`; "" for a value with fewer than 2 trials).

    Numeric hyperparameters with many values are binned over the finished and pruned trials together.
    """
    stopped = pruned if pruned is not None else done.head(0)
    keys = levels(pd.concat([done[param], stopped[param]], ignore_index=True)).rename(param)
    done_keys, stopped_keys = keys.iloc[: len(done)].set_axis(done.index), keys.iloc[len(done):]
    groups = done[metric].groupby(done_keys, observed=True, sort=False)
    best = groups.min() if mode == "min" else groups.max()
    table = pd.DataFrame(
        {f"{metric} mean": groups.mean(), f"{metric} std": groups.std(), "n": groups.size(), f"{metric} best": best}
    )
    table["pruned"] = stopped_keys.value_counts().reindex(table.index, fill_value=0).astype(int)
    table = _sort_levels(table.reset_index(), param)
    values = [groups.get_group(level).tolist() for level in table[param]]
    table["vs_best"], table["p_vs_best"] = inference.against_best(values, mode)
    return table[[param, f"{metric} mean", f"{metric} std", "n", f"{metric} best", "pruned", "p_vs_best", "vs_best"]]


def level_order(values: pd.Series) -> list[Any]:
    """The distinct values of ``values`` in reading order (numbers ascending, "8-16" before "16-32-64")."""
    return list(_sort_levels(pd.DataFrame({"v": values.dropna().unique()}), "v")["v"])


def _sort_levels(table: pd.DataFrame, column: str) -> pd.DataFrame:
    values = table[column]
    if isinstance(values.dtype, pd.CategoricalDtype) or _is_number(values):
        return table.sort_values(column, kind="stable").reset_index(drop=True)
    order = sorted(range(len(values)), key=lambda i: _natural(values.iloc[i]))
    return table.iloc[order].reset_index(drop=True)


def _natural(value: Any) -> tuple[Any, ...]:
    # "8-16" before "16-32-64": filter lists sort by depth, then widths; other text sorts as text.
    try:
        parts = tuple(int(p) for p in str(value).split("-"))
        return (0, len(parts), parts)
    except ValueError:
        return (1, 0, (str(value),))


def pivot(done: pd.DataFrame, row: str, column: str, metric: str, how: str = "mean") -> pd.DataFrame:
    """A two-way table of ``metric`` (``how`` = mean or count): one row per ``row`` level, one column
    ``"<column>=<level>"`` per ``column`` level; empty cells are NaN (mean) or 0 (count)."""
    rows, cols = levels(done[row]).rename(row), levels(done[column]).rename(column)
    table = done.groupby([rows, cols], observed=True)[metric].agg(how).unstack(column)
    table = table.reindex(columns=_sort_levels(pd.DataFrame({column: table.columns}), column)[column])
    if how == "count":
        table = table.fillna(0).astype(int)
    table.columns = [f"{column}={c}" for c in table.columns]
    return _sort_levels(table.reset_index(), row)


def best_nuisance(done: pd.DataFrame, scientific: str, nuisance: Sequence[str], metric: str, mode: str) -> pd.DataFrame:
    """For each value of ``scientific``: its best trial, the nuisance settings that got there, and n."""
    ranked = rank(done, metric, mode)
    keys = levels(ranked[scientific]).rename(scientific)
    best = ranked.groupby(keys, observed=True, sort=False).head(1)
    n = keys.value_counts()
    table = best[["trial_id", *[c for c in nuisance if c != scientific], metric]].copy()
    table.insert(0, scientific, keys.loc[best.index])
    table["n"] = keys.loc[best.index].map(n).astype(int).to_numpy()
    return _sort_levels(table, scientific)


def correlations(done: pd.DataFrame, params: Sequence[str], metric: str) -> pd.DataFrame:
    """Spearman rank correlation of each numeric hyperparameter with ``metric``.

    Columns: param, rho, p_value, p_holm (Holm-adjusted over the hyperparameters in the table: one test per
    hyperparameter is a family, and the smallest of several p-values is small by chance), n, strength (none /
    weak / moderate / strong for |rho| below 0.2, 0.4, 0.7 and above). Parameters that are not numeric or are
    constant are left out.
    """
    rows = []
    for param in params:
        pair = done[[param, metric]].dropna()
        if not _is_number(pair[param]) or len(pair) < 3 or pair[param].nunique() < 2 or pair[metric].nunique() < 2:
            continue
        rho, p_value = stats.spearmanr(pair[param], pair[metric])
        rows.append((param, float(rho), float(p_value), len(pair), _strength(float(rho))))
    table = pd.DataFrame(rows, columns=["param", "rho", "p_value", "n", "strength"])
    table.insert(3, "p_holm", inference.holm(table["p_value"].tolist()))
    return table


def _strength(rho: float) -> str:
    size = abs(rho)
    return "none" if size < 0.2 else "weak" if size < 0.4 else "moderate" if size < 0.7 else "strong"


def pareto(done: pd.DataFrame, metric: str, mode: str, cost: str) -> pd.DataFrame:
    """The trials no other trial beats on both ``metric`` and ``cost`` (lower cost is better), cheapest first.

    Columns: trial_id, architecture, ``cost``, ``metric``.
    """
    sign = 1.0 if mode == "min" else -1.0
    ordered = done.dropna(subset=[cost]).assign(_key=lambda d: sign * d[metric])
    ordered = ordered.sort_values([cost, "_key"], kind="stable")
    keep, best = [], np.inf
    for index, key in ordered["_key"].items():
        if key < best:
            keep.append(index)
            best = key
    return ordered.loc[keep, ["trial_id", "architecture", cost, metric]].reset_index(drop=True)


def optimization_history(trials: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """Every ended trial in creation order: its ``metric`` (NaN unless COMPLETE), the best so far, and the
    compute spent so far (train seconds of every ended trial, failed and pruned ones included).

    Columns: number, trial_id, status, ``metric``, best_so_far, cumulative_seconds.
    """
    ended = trials[trials["status"].isin([COMPLETE, PRUNED, FAILED])]
    ended = ended.sort_values(["number", "finished_at"], kind="stable")
    value = ended[metric].where(ended["status"] == COMPLETE)
    best = value.cummin() if mode == "min" else value.cummax()
    return pd.DataFrame(
        {
            "number": ended["number"],
            "trial_id": ended["trial_id"],
            "status": ended["status"],
            metric: value,
            "best_so_far": best.ffill(),
            "cumulative_seconds": ended["train_seconds"].fillna(0).cumsum(),
        }
    ).reset_index(drop=True)


def learning_curves(history: pd.DataFrame, board: pd.DataFrame) -> pd.DataFrame:
    """The train and val MSE per epoch of the leaderboard's trials (falls back to the loss without MSE).

    Columns: trial (``"#rank architecture"``), epoch, split (train / val), measure, value.
    """
    measure = "mse" if history["mse"].notna().any() or history["val_mse"].notna().any() else "loss"
    names = {row.trial_id: f"#{row.rank} {row.architecture}" for row in board.itertuples()}
    part = history[history["trial_id"].isin(list(names))]
    long = part.melt(
        id_vars=["trial_id", "epoch"], value_vars=[measure, f"val_{measure}"], var_name="split", value_name="value"
    ).dropna(subset=["value"])
    long["split"] = long["split"].map({measure: "train", f"val_{measure}": "val"})
    long["trial"] = long["trial_id"].map(names)
    long["measure"] = measure
    order = {t: i for i, t in enumerate(names)}
    long = long.sort_values(["trial_id", "split", "epoch"], key=lambda s: s.map(order) if s.name == "trial_id" else s)
    return long[["trial", "epoch", "split", "measure", "value"]].reset_index(drop=True)


def study_row(name: str, meta: dict[str, Any], trials: pd.DataFrame, metric: str, mode: str) -> dict[str, Any]:
    """One study's line of the side-by-side comparison."""
    done = finished(trials, metric)
    best = rank(done, metric, mode).iloc[0] if len(done) else None
    counts = trials["status"].value_counts()
    return {
        "study": name,
        "engine": meta.get("engine"),
        "task": meta.get("task"),
        "status": meta.get("status"),
        "trials": len(trials),
        **{status.lower(): int(counts.get(status, 0)) for status in (COMPLETE, PRUNED, FAILED)},
        f"best {metric}": None if best is None else best[metric],
        f"median {metric}": done[metric].median() if len(done) else None,
        "best architecture": None if best is None else best["architecture"],
        "test_mse": None if best is None else best["test_mse"],
        "test_mse_ci95": None if best is None else best.get("test_mse_ci95"),
        "trivial_mse": None if best is None else best["trivial_mse"],
        "skill": None if best is None else best["skill"],
        "pca_mse": None if best is None else best.get("pca_mse"),
        "skill_pca": None if best is None else best.get("skill_pca"),
        "pca_comparison": None if best is None else pca_comparison(best.get("pca_mse"), best.get("pca_matched")),
        "train_seconds": trials["train_seconds"].sum(min_count=1),
    }


def compare_studies(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The side-by-side table of several studies (rows from :func:`study_row`), in the order given."""
    return pd.DataFrame(list(rows))


def _is_number(values: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(values)) and not pd.api.types.is_bool_dtype(values)
