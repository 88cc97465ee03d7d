"""``seed-architectures``: the published CAE architecture comparison, rerun as a grid through the real sweep.

The grid (``benchmarks/spaces/architectures.yaml``): filters 16-32, 32-64, 32-48-64, 64-128-256 x kernel 3, 5
x latent 64, 128, 256 x learning rate 1e-3, 1e-4, reconstruction of 32x32 RGB in [-1, 1], ``--budget`` epochs
(15, as published) without early stopping, one study per seed. The comparison table shows each architecture
at its better learning rate (chosen on validation MSE; test scores reported): test MSE, PSNR, SSIM,
parameters and seconds per epoch. The published findings are then checked on the data used:

1. "deeper models with more filters reach lower MSE": Spearman's rho between an architecture's filter count
   and its best test MSE, per filter list (holds: the ranking is exactly the size ranking);
2. "no linear relation between latent size and MSE": Pearson's r between latent size and test MSE over all
   architectures (holds: not significant at 5%);
3. "32-48-64 is the best accuracy/time trade-off": the knee of the Pareto front of test MSE vs seconds per
   epoch (the front point nearest the ideal corner after scaling both axes to [0, 1] over the front).

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
from benchmarks import output
from benchmarks.definitions import RunPlan, derived_space
from benchmarks.sweeps import run_study, sweep_options

PUBLISHED_BASELINE_MSE = 0.0179
BASELINE = {"filters": "32-48-64", "kernel_size": 3, "latent_dim": 128, "lr": 1e-3}
PUBLISHED_TRADEOFF = "32-48-64"
ARCHITECTURE = ["filters", "kernel_size", "latent_dim"]
SIGNIFICANCE = 0.05


class Finding(NamedTuple):
    """A published claim, whether it holds on the data used, and the numbers that say so."""

    claim: str
    verdict: str  # "holds", "partly", "does not hold" or "undecided" (too few results)
    evidence: str


def run(plan: RunPlan) -> dict[str, Any]:
    started = time.time()
    space = derived_space(
        plan.definition.space, data=plan.data, image_size=plan.image_size, limit=plan.limit, max_epochs=plan.budget
    )
    names, frames = [], []
    for seed in range(plan.seeds):
        study = run_study(sweep_options(plan, space, f"architectures-s{seed}", seed=seed), space)
        names.append(study.name)
        frames.append(with_epoch_seconds(study.trials, study.history).assign(seed=seed))
    trials = pd.concat(frames, ignore_index=True)
    table = comparison(trials)
    findings = judge(table)
    baseline = baseline_row(trials)
    result = {
        "studies": names,
        "report_command": output.study_command(plan.folder, names),
        "comparison": output.records(table),
        "findings": [f._asdict() for f in findings],
        "baseline": baseline,
        "against_trivial": against_trivial(table),
    }
    pngs = {}
    if len(table):
        from analysis.plots import png
        from benchmarks.plots import tradeoff_figure

        pngs["tradeoff.png"] = png(tradeoff_figure(table, pareto_front(table)))
    return output.write(plan, result, blocks(plan, table, findings, baseline, names), pngs, started)


def with_epoch_seconds(trials: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Add each trial's median epoch time: robust to the first epoch's tracing and to a moment of machine load."""
    median = history.groupby("trial_id")["seconds"].median().rename("seconds_per_epoch")
    return trials.merge(median, left_on="trial_id", right_index=True, how="left")


def comparison(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture at its better learning rate (by mean val MSE over seeds), best test MSE first.

    Seconds per epoch are the trials' median epoch times when given (:func:`with_epoch_seconds`), else their
    mean (train time / epochs).
    """
    done = trials[trials["status"] == results.COMPLETE].copy()
    if done.empty:
        return pd.DataFrame(columns=["architecture", *ARCHITECTURE, "lr", "test_mse"])
    if "seconds_per_epoch" not in done:
        done["seconds_per_epoch"] = done["train_seconds"] / done["epochs"]
    per_lr = done.groupby([*ARCHITECTURE, "lr"], as_index=False).agg(
        architecture=("architecture", "first"),
        val_mse=("val_mse", "mean"),
        test_mse=("test_mse", "mean"),
        test_mse_std=("test_mse", "std"),
        test_psnr=("test_psnr", "mean"),
        test_ssim=("test_ssim", "mean"),
        trivial_mse=("trivial_mse", "mean"),
        params=("params", "first"),
        seconds_per_epoch=("seconds_per_epoch", "mean"),
        seeds=("seed", "nunique"),
    )
    best = per_lr.loc[per_lr.groupby(ARCHITECTURE)["val_mse"].idxmin()]
    columns = ["architecture", *ARCHITECTURE, "lr", "test_mse", "test_mse_std", "test_psnr", "test_ssim", "params",
               "seconds_per_epoch", "val_mse", "trivial_mse", "seeds"]
    return best[columns].sort_values("test_mse", kind="stable").reset_index(drop=True)


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
                "published regime; run without --limit (or on CIFAR-10) for that.")
    return (f"{beat} of {len(table)} architectures beat the trivial 2x down/up-sampling baseline "
            f"(test MSE {trivial:.4g}).")


def baseline_row(trials: pd.DataFrame) -> dict[str, Any] | None:
    """The published baseline's scores here (mean over seeds), next to the published 0.0179."""
    done = trials[trials["status"] == results.COMPLETE]
    match = done[(done["filters"] == BASELINE["filters"]) & (done["kernel_size"] == BASELINE["kernel_size"])
                 & (done["latent_dim"] == BASELINE["latent_dim"]) & ((done["lr"] - BASELINE["lr"]).abs() < 1e-12)]
    if match.empty:
        return None
    return {
        "architecture": str(match["architecture"].iloc[0]), "lr": BASELINE["lr"],
        "test_mse": float(match["test_mse"].mean()), "trivial_mse": float(match["trivial_mse"].mean()),
        "published_test_mse": PUBLISHED_BASELINE_MSE, "epochs": int(match["epochs"].max()), "seeds": len(match),
    }


def filters_total(filters: str) -> int:
    return sum(int(f) for f in str(filters).split("-"))


def judge(table: pd.DataFrame) -> list[Finding]:
    """The three published findings, checked on ``table`` (see the module docstring)."""
    return [_deeper_is_better(table), _latent_not_linear(table), _tradeoff(table)]


def _deeper_is_better(table: pd.DataFrame) -> Finding:
    claim = "deeper models with more filters reach lower MSE"
    per = table.groupby("filters", as_index=False)["test_mse"].min()
    if len(per) < 3:
        return Finding(claim, "undecided", f"only {len(per)} filter list(s) finished")
    per["size"] = per["filters"].map(filters_total)
    per = per.sort_values("size")
    rho = float(stats.spearmanr(per["size"], per["test_mse"]).statistic)
    ranking = ", ".join(f"{r.filters} {r.test_mse:.4g}" for r in per.itertuples())
    verdict = "holds" if rho <= -1 + 1e-9 else "partly" if rho < 0 else "does not hold"
    return Finding(claim, verdict, f"best test MSE per filter list, from fewest to most filters: {ranking}; "
                                   f"Spearman rho = {rho:.2f}")


def _latent_not_linear(table: pd.DataFrame) -> Finding:
    claim = "no linear relation between latent size and MSE"
    if table["latent_dim"].nunique() < 3 or len(table) < 4:
        return Finding(claim, "undecided", f"{len(table)} architectures, {table['latent_dim'].nunique()} latent sizes")
    fit = stats.pearsonr(table["latent_dim"].astype(float), table["test_mse"].astype(float))
    r, p = float(fit.statistic), float(fit.pvalue)
    slopes = [float(np.polyfit(g["latent_dim"].astype(float), g["test_mse"].astype(float), 1)[0])
              for _, g in table.groupby(["filters", "kernel_size"]) if g["latent_dim"].nunique() >= 2]
    falling = sum(s < 0 for s in slopes)
    verdict = "holds" if p >= SIGNIFICANCE else "does not hold"
    return Finding(claim, verdict, f"Pearson r = {r:.2f} (p = {p:.2g}, n = {len(table)}); within a filter list and "
                                   f"kernel, MSE falls with latent size in {falling} of {len(slopes)} cases")


def pareto_front(table: pd.DataFrame) -> pd.DataFrame:
    """Architectures no other beats on both test MSE and seconds per epoch, fastest first."""
    ordered = table.sort_values(["seconds_per_epoch", "test_mse"], kind="stable")
    keep, best = [], math.inf
    for index, row in ordered.iterrows():
        if row["test_mse"] < best:
            keep.append(index)
            best = row["test_mse"]
    return ordered.loc[keep].reset_index(drop=True)


def knee(front: pd.DataFrame) -> pd.Series | None:
    """The front point nearest the ideal corner, both axes scaled to [0, 1] over the front (time on a log scale)."""
    if front.empty:
        return None
    scaled = []
    for values in (np.log(front["seconds_per_epoch"].astype(float)), front["test_mse"].astype(float)):
        span = values.max() - values.min()
        scaled.append((values - values.min()) / span if span > 0 else values * 0.0)
    distance = np.hypot(scaled[0], scaled[1])
    return front.iloc[int(np.argmin(distance.to_numpy()))]


def _tradeoff(table: pd.DataFrame) -> Finding:
    claim = f"{PUBLISHED_TRADEOFF} is the best accuracy/time trade-off"
    front = pareto_front(table)
    point = knee(front)
    if point is None or len(table) < 3:
        return Finding(claim, "undecided", f"{len(table)} architectures finished")
    on_front = ", ".join(f"{r.architecture} ({r.test_mse:.4g}, {r.seconds_per_epoch:.2g} s/epoch)"
                         for r in front.itertuples())
    if point["filters"] == PUBLISHED_TRADEOFF:
        verdict = "holds"
    elif (front["filters"] == PUBLISHED_TRADEOFF).any():
        verdict = "partly"
    else:
        verdict = "does not hold"
    return Finding(claim, verdict, f"best trade-off here: {point['architecture']} (test MSE {point['test_mse']:.4g}, "
                                   f"{point['seconds_per_epoch']:.2g} s/epoch); Pareto front: {on_front}")


def blocks(
    plan: RunPlan, table: pd.DataFrame, findings: list[Finding], baseline: dict[str, Any] | None, names: list[str]
) -> list[Block]:
    """The result as report blocks (rendered to table.md and the terminal)."""
    intro = (f"{plan.data_note}. Grid of {plan.definition.space.samples} trials per seed, {plan.budget} epoch(s) each "
             f"(published: 15), {plan.image_size}x{plan.image_size} RGB, "
             f"{'all images' if plan.limit is None else f'at most {plan.limit} images per split'}, "
             f"{plan.seeds} seed(s). Studies: {', '.join(names)} ({output.study_command(plan.folder, names)}).")
    if baseline is None:
        reference = "The baseline 32-48-64 k3 z128 at learning rate 1e-3 did not finish here."
    else:
        reference = (f"Baseline {baseline['architecture']} at learning rate 1e-3: test MSE {baseline['test_mse']:.4g} "
                     f"after {baseline['epochs']} epochs (published on CIFAR-10 after 15 epochs: "
                     f"{PUBLISHED_BASELINE_MSE}; the trivial 2x down/up-sampling baseline scores "
                     f"{baseline['trivial_mse']:.4g} on the same test images).")
    shown = table.drop(columns=["val_mse", "trivial_mse"] + ([] if plan.seeds > 1 else ["test_mse_std", "seeds"]))
    return [
        Text(intro),
        Heading("Comparison (each architecture at its better learning rate)"),
        Table(shown, formats={"test_mse_std": "test_mse"}),
        Heading("Published findings on this data"),
        Bullets([f"{f.claim}: {f.verdict.upper()}. {f.evidence}." for f in findings]),
        Text(against_trivial(table)),
        Text(reference),
        Image("tradeoff.png", "test MSE vs seconds per epoch; the line is the Pareto front"),
    ]
