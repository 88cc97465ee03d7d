"""``seed-architectures``: the published CAE architecture comparison, rerun as a grid through the real sweep.

The published grid (``--profile published``, ``benchmarks/spaces/architectures.yaml``, for a GPU): filters
16-32, 32-64, 32-48-64, 64-128-256 x kernel 3, 5 x latent 64, 128, 256 x learning rate 1e-3, 1e-4,
reconstruction of 32x32 RGB in [-1, 1], 15 epochs without early stopping. The default CPU profile
(``architectures-cpu.yaml``) keeps the four filter lists and three latent sizes at kernel 3 with one learning
rate and a cosine decay, on 16x16 tiles, sized by measuring so that the models flatten within about an hour
on two cores (the numbers are in docs/benchmarks.md).

The study trains the grid with training seed 0; the best configuration of each filter list (by validation
MSE) is then trained again with more training seeds (``search confirm``, same data split; ``--seeds``, 3 by
default), so every comparison between filter lists is set against the seeds' spread
(:mod:`benchmarks.evidence`). The published findings, each judged HOLDS / DOES NOT HOLD / NOT
DISTINGUISHABLE with its numbers and n:

1. "deeper models with more filters reach lower MSE": each filter list (at its best configuration) against
   the next larger one, Welch's t-test over the training seeds; it holds when every step down in size is
   significantly worse;
2. "no linear relation between latent size and MSE": Pearson's r between latent size and test MSE over all
   architectures (it does not hold when the linear relation is significant at 5 %);
3. "32-48-64 is the best accuracy/time trade-off": the knee of the Pareto front of the filter lists' mean
   test MSE vs seconds per epoch (the front point nearest the ideal corner after scaling both axes to [0, 1]);
   not distinguishable when 32-48-64 is not the knee but lies within the seeds' noise of it at a similar time.

Each is also judged against PCA with as many components as the latent size (the best linear code of the same
size): a fourth line says whether the CAEs beat it. Whether the compared models have flattened (val MSE
improving by less than 2 % over their last third of epochs) is measured and said next to the verdicts.

The published reference for the baseline (32-48-64, kernel 3, latent 128, learning rate 1e-3, 15 epochs on
CIFAR-10) is test MSE 0.0179.
"""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

import results
from analysis.document import Block, Bullets, Heading, Image, Table, Text
from benchmarks import evidence, output
from benchmarks.definitions import RunPlan, derived_space
from benchmarks.evidence import DOES_NOT_HOLD, HOLDS, NOT_DISTINGUISHABLE, UNDECIDED
from benchmarks.sweeps import confirm_study, run_study, seed_runs, sweep_options
from results.trials import search_trials

PUBLISHED_BASELINE_MSE = 0.0179
BASELINE = {"filters": "32-48-64", "kernel_size": 3, "latent_dim": 128, "lr": 1e-3}
PUBLISHED_TRADEOFF = "32-48-64"
ARCHITECTURE = ["filters", "kernel_size", "latent_dim"]
SIGNIFICANCE = evidence.SIGNIFICANCE
SIMILAR_TIME = 1.25  # two seconds-per-epoch figures within this factor count as the same cost
STUDY = "architectures"


class Finding(NamedTuple):
    """A published claim, its verdict on the data used (:data:`benchmarks.evidence.VERDICTS`), and the numbers."""

    claim: str
    verdict: str
    evidence: str


def run(plan: RunPlan) -> dict[str, Any]:
    started = time.time()
    space = derived_space(
        plan.definition.space, data=plan.data, image_size=plan.image_size, limit=plan.limit, max_epochs=plan.budget
    )
    opts = sweep_options(plan, space, STUDY, seed=0)
    study = run_study(opts, space)
    table = comparison(with_epoch_seconds(search_trials(study.trials), study.history))
    picks = best_per_filters(table)
    study = confirm_study(opts, picks["trial_id"].tolist(), plan.seeds)
    trials = with_epoch_seconds(study.trials, study.history)
    filters = with_seeds(picks, trials)
    gains = evidence.flattening(study.history, trials.loc[trials["status"] == results.COMPLETE, "trial_id"])
    findings = judge(table, filters)
    baseline = baseline_row(table)
    result = {
        "studies": [study.name],
        "report_command": output.study_command(plan.folder, [study.name]),
        "comparison": output.records(table),
        "filter_lists": output.records(filters),
        "findings": [f._asdict() for f in findings],
        "baseline": baseline,
        "against_trivial": against_trivial(table),
        "flattening": {"sentence": evidence.flat_sentence(gains, "trials"), "gains": gains.to_dict()},
    }
    pngs = {}
    if len(filters):
        from analysis.plots import png
        from benchmarks.plots import tradeoff_figure

        pngs["tradeoff.png"] = png(tradeoff_figure(table, filters, pareto_front(filters)))
    return output.write(plan, result, blocks(plan, table, filters, findings, baseline, result, study.name), pngs,
                        started)


def with_epoch_seconds(trials: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Add each trial's median epoch time: robust to the first epoch's tracing and to a moment of machine load."""
    median = history.groupby("trial_id")["seconds"].median().rename("seconds_per_epoch")
    return trials.merge(median, left_on="trial_id", right_index=True, how="left")


def comparison(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture at its better learning rate (by val MSE; test scores reported), best test MSE
    first, with the trial that trained it.

    Seconds per epoch are the trials' median epoch times when given (:func:`with_epoch_seconds`), else their
    mean (train time / epochs).
    """
    done = trials[trials["status"] == results.COMPLETE].copy()
    if done.empty:
        return pd.DataFrame(columns=["architecture", *ARCHITECTURE, "lr", "test_mse", "trial_id"])
    if "seconds_per_epoch" not in done:
        done["seconds_per_epoch"] = done["train_seconds"] / done["epochs"]
    best = done.loc[done.groupby(ARCHITECTURE)["val_mse"].idxmin()]
    columns = ["architecture", *ARCHITECTURE, "lr", "test_mse", "pca_mse", "test_psnr", "test_ssim", "params",
               "seconds_per_epoch", "val_mse", "trivial_mse", "trial_id"]
    return best[columns].sort_values("test_mse", kind="stable").reset_index(drop=True)


def best_per_filters(table: pd.DataFrame) -> pd.DataFrame:
    """Each filter list's best architecture (by val MSE): the configurations confirmed with more seeds."""
    if table.empty:
        return table.assign(size=[])
    best = table.loc[table.groupby("filters")["val_mse"].idxmin()].copy()
    best["size"] = best["filters"].map(filters_total)
    return best.sort_values("size", kind="stable").reset_index(drop=True)


def with_seeds(picks: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """``picks`` with their test MSE over every training seed (the original and its repeats): the values, mean,
    s.d. and n, and seconds per epoch averaged over them."""
    rows = []
    for pick in picks.to_dict("records"):
        runs = seed_runs(trials, pick["trial_id"])
        values = runs["test_mse"].astype(float).tolist()
        rows.append({**pick, "test_mse_seeds": values, "test_mse_mean": float(np.mean(values)) if values else math.nan,
                     "test_mse_sd": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
                     "n": len(values), "seconds_per_epoch": float(runs["seconds_per_epoch"].mean())
                     if len(runs) else pick["seconds_per_epoch"]})
    columns = [*picks.columns, "test_mse_seeds", "test_mse_mean", "test_mse_sd", "n"]
    return pd.DataFrame(rows, columns=columns)


def against_trivial(table: pd.DataFrame) -> str:
    """How many architectures beat the trivial 2x down/up-sampling baseline, and what it means when none do."""
    if table.empty:
        return "No architecture finished."
    trivial = float(table["trivial_mse"].mean())
    beat = int((table["test_mse"] < table["trivial_mse"]).sum())
    if beat == len(table):
        return f"Every architecture beats the trivial 2x down/up-sampling baseline (test MSE {trivial:.4g})."
    if beat == 0:
        return (f"No architecture beats the trivial 2x down/up-sampling baseline (test MSE {trivial:.4g}): at this "
                "size the models are early in training, so the verdicts above describe early training, not the "
                "published regime; train longer or on more images for that.")
    return (f"{beat} of {len(table)} architectures beat the trivial 2x down/up-sampling baseline "
            f"(test MSE {trivial:.4g}; it keeps a quarter of the values, more than any latent code here).")


def baseline_row(table: pd.DataFrame) -> dict[str, Any] | None:
    """The published baseline architecture's scores here, next to the published 0.0179."""
    match = table[(table["filters"] == BASELINE["filters"]) & (table["kernel_size"] == BASELINE["kernel_size"])
                  & (table["latent_dim"] == BASELINE["latent_dim"])]
    if match.empty:
        return None
    row = match.iloc[0]
    return {
        "architecture": str(row["architecture"]), "lr": float(row["lr"]), "test_mse": float(row["test_mse"]),
        "trivial_mse": float(row["trivial_mse"]), "pca_mse": float(row["pca_mse"]),
        "published_test_mse": PUBLISHED_BASELINE_MSE,
    }


def filters_total(filters: str) -> int:
    return sum(int(f) for f in str(filters).split("-"))


def judge(table: pd.DataFrame, filters: pd.DataFrame) -> list[Finding]:
    """The three published findings and the PCA check (see the module docstring)."""
    return [_deeper_is_better(filters), _latent_not_linear(table), _tradeoff(filters), _beats_pca(filters)]


def _seeds(row: Any) -> list[float]:
    return [float(v) for v in row["test_mse_seeds"]]


def _deeper_is_better(filters: pd.DataFrame) -> Finding:
    claim = "deeper models with more filters reach lower MSE"
    if len(filters) < 2:
        return Finding(claim, UNDECIDED, f"only {len(filters)} filter list(s) finished")
    rows = filters.to_dict("records")
    steps, lower = [], []
    for small, large in zip(rows, rows[1:], strict=False):
        c = evidence.compare(_seeds(large), _seeds(small))
        steps.append(c.describe(large["filters"], small["filters"]))
        lower.append(c.lower)
    rho = float(stats.spearmanr(filters["size"], filters["test_mse_mean"]).statistic) if len(filters) > 2 else math.nan
    if all(side == "a" for side in lower):
        verdict = HOLDS
    elif any(side == "b" for side in lower):
        verdict = DOES_NOT_HOLD
    else:
        verdict = NOT_DISTINGUISHABLE
    return Finding(claim, verdict, "each filter list's best configuration, test MSE over training seeds, larger vs "
                   f"next smaller: {'; '.join(steps)}; Spearman rho of size vs mean test MSE = {rho:.2f}")


def _latent_not_linear(table: pd.DataFrame) -> Finding:
    claim = "no linear relation between latent size and MSE"
    if table["latent_dim"].nunique() < 3 or len(table) < 4:
        return Finding(claim, UNDECIDED, f"{len(table)} architectures, {table['latent_dim'].nunique()} latent sizes")
    fit = stats.pearsonr(table["latent_dim"].astype(float), table["test_mse"].astype(float))
    r, p = float(fit.statistic), float(fit.pvalue)
    slopes = [float(np.polyfit(g["latent_dim"].astype(float), g["test_mse"].astype(float), 1)[0])
              for _, g in table.groupby(["filters", "kernel_size"]) if g["latent_dim"].nunique() >= 2]
    falling = sum(s < 0 for s in slopes)
    verdict = HOLDS if p >= SIGNIFICANCE else DOES_NOT_HOLD
    return Finding(claim, verdict, f"Pearson r = {r:.2f} (p = {p:.2g}, n = {len(table)} architectures, training "
                   f"seed 0); within a filter list and kernel, MSE falls with latent size in {falling} of "
                   f"{len(slopes)} cases")


def pareto_front(filters: pd.DataFrame, mse: str = "test_mse_mean") -> pd.DataFrame:
    """Rows no other beats on both ``mse`` and seconds per epoch, fastest first."""
    ordered = filters.sort_values(["seconds_per_epoch", mse], kind="stable")
    keep, best = [], math.inf
    for index, row in ordered.iterrows():
        if row[mse] < best:
            keep.append(index)
            best = row[mse]
    return ordered.loc[keep].reset_index(drop=True)


def knee(front: pd.DataFrame, mse: str = "test_mse_mean") -> pd.Series | None:
    """The front point nearest the ideal corner, both axes scaled to [0, 1] over the front (time on a log scale)."""
    if front.empty:
        return None
    scaled = []
    for values in (np.log(front["seconds_per_epoch"].astype(float)), front[mse].astype(float)):
        span = values.max() - values.min()
        scaled.append((values - values.min()) / span if span > 0 else values * 0.0)
    distance = np.hypot(scaled[0], scaled[1])
    return front.iloc[int(np.argmin(distance.to_numpy()))]


def _tradeoff(filters: pd.DataFrame) -> Finding:
    claim = f"{PUBLISHED_TRADEOFF} is the best accuracy/time trade-off"
    front = pareto_front(filters)
    point = knee(front)
    published = filters[filters["filters"] == PUBLISHED_TRADEOFF]
    if point is None or len(filters) < 3 or published.empty:
        return Finding(claim, UNDECIDED, f"{len(filters)} filter list(s) finished"
                       + ("" if len(published) else f", {PUBLISHED_TRADEOFF} not among them"))
    on_front = ", ".join(f"{r.filters} ({r.test_mse_mean:.4g}, {r.seconds_per_epoch:.2g} s/epoch)"
                         for r in front.itertuples())
    where = (f"best trade-off here: {point['filters']} (mean test MSE {point['test_mse_mean']:.4g}, "
             f"{point['seconds_per_epoch']:.2g} s/epoch); Pareto front: {on_front}")
    if point["filters"] == PUBLISHED_TRADEOFF:
        return Finding(claim, HOLDS, where)
    ours = published.iloc[0]
    c = evidence.compare(_seeds(ours), _seeds(point))
    times = float(ours["seconds_per_epoch"]) / float(point["seconds_per_epoch"])
    similar = 1 / SIMILAR_TIME <= times <= SIMILAR_TIME
    verdict = NOT_DISTINGUISHABLE if c.lower == "neither" and similar else DOES_NOT_HOLD
    return Finding(claim, verdict, f"{where}; {c.describe(PUBLISHED_TRADEOFF, str(point['filters']))}, time ratio "
                   f"{times:.2f}")


def _beats_pca(filters: pd.DataFrame) -> Finding:
    claim = "(check) the CAEs beat PCA with as many components as their latent size"
    known = filters[filters["pca_mse"].notna()] if len(filters) else filters
    if known.empty:
        return Finding(claim, UNDECIDED, "no PCA baseline recorded")
    parts, sides = [], []
    for row in known.to_dict("records"):
        c = evidence.against_value(_seeds(row), float(row["pca_mse"]))
        parts.append(f"{row['architecture']} {c.describe('CAE', 'PCA-' + str(int(row['latent_dim'])))}")
        sides.append(c.lower)
    verdict = (HOLDS if all(s == "a" for s in sides) else DOES_NOT_HOLD if any(s == "b" for s in sides)
               else NOT_DISTINGUISHABLE)
    return Finding(claim, verdict, "; ".join(parts))


def blocks(
    plan: RunPlan, table: pd.DataFrame, filters: pd.DataFrame, findings: list[Finding], baseline: dict[str, Any] | None,
    result: dict[str, Any], name: str,
) -> list[Block]:
    """The result as report blocks (rendered to table.md and the terminal)."""
    space = plan.definition.space
    intro = (f"{plan.data_note}. Profile {plan.profile}: grid of {space.samples} configurations, {plan.budget} "
             f"epoch(s) each (published: 15), {plan.image_size}x{plan.image_size} RGB, "
             f"{'all images' if plan.limit is None else f'at most {plan.limit} images per split'}; the best "
             f"configuration of each filter list trained with {plan.seeds} training seed(s) in all (same split). "
             f"Study: {name} ({output.study_command(plan.folder, [name])}).")
    if baseline is None:
        reference = "The baseline 32-48-64 k3 z128 did not finish here."
    else:
        reference = (f"Baseline {baseline['architecture']}: test MSE {baseline['test_mse']:.4g} (published on "
                     f"CIFAR-10 after 15 epochs: {PUBLISHED_BASELINE_MSE}; on the same test images the trivial 2x "
                     f"down/up-sampling baseline scores {baseline['trivial_mse']:.4g} and PCA with 128 components "
                     f"{baseline['pca_mse']:.4g}).")
    shown = table.drop(columns=["val_mse", "trivial_mse", "trial_id"])
    per_filters = filters[["filters", "architecture", "lr", "test_mse_mean", "test_mse_sd", "n", "pca_mse",
                           "seconds_per_epoch", "params"]] if len(filters) else filters
    return [
        Text(intro),
        Heading("Comparison (each architecture at its better learning rate, training seed 0)"),
        Table(shown),
        Heading("Each filter list's best configuration over training seeds"),
        Table(per_filters, formats={"test_mse_mean": "test_mse", "test_mse_sd": "test_mse"}),
        Heading("Published findings on this data"),
        Bullets([f"{f.claim}: {f.verdict}. {f.evidence}." for f in findings]),
        Text(result["flattening"]["sentence"] + "."),
        Text(against_trivial(table)),
        Text(reference),
        Image("tradeoff.png", "test MSE vs seconds per epoch; the line is the Pareto front of the filter lists"),
    ]
