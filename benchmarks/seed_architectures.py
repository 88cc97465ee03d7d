"""``seed-architectures``: the published CAE architecture comparison, rerun as a grid through the real sweep.

The published grid (``--profile published``, ``benchmarks/spaces/architectures.yaml``, for a GPU): filters
16-32, 32-64, 32-48-64, 64-128-256 x kernel 3, 5 x latent 64, 128, 256 x learning rate 1e-3, 1e-4,
reconstruction of 32x32 RGB in [-1, 1], 15 epochs without early stopping. The default CPU profile
(``architectures-cpu.yaml``) keeps the four filter lists and three latent sizes at kernel 3 with one learning
rate and a cosine decay, on 16x16 tiles, sized by measuring so that the models flatten within about an hour
on two cores (the numbers are in docs/benchmarks.md).

The study trains the grid with training seed 0; the best configuration of each filter list (by validation
MSE) is then trained again with fresh training seeds (``search confirm``, same data split; ``--seeds``, 3 by
default). The search's own run of a configuration won its selection on its scores, so it is no evidence for
itself: every comparison between filter lists rests on the fresh seeds only (:mod:`benchmarks.evidence`), and
the selected run is reported apart (``test_mse_selected``). The published findings, each judged HOLDS / DOES
NOT HOLD / NOT DISTINGUISHABLE / UNDECIDED with its numbers and n:

1. "deeper models with more filters reach lower MSE": each filter list (at its best configuration) against
   the next larger one, Welch's t-test over the fresh seeds, Holm-adjusted over the steps; it holds when every
   step down in size is significantly worse;
2. "no linear relation between latent size and MSE": a non-significant test does not show absence, so the
   test MSE of every architecture is regressed on latent size with one intercept per filter list (and kernel),
   and the claim HOLDS only when the slope's 90 % interval (two one-sided tests at 5 %) keeps the change over
   the grid's latent range within +-:data:`LATENT_MARGIN` of the mean test MSE; it DOES NOT HOLD when the 95 %
   interval excludes 0 and is UNDECIDED otherwise;
3. "32-48-64 is the best accuracy/time trade-off": judged on the Pareto front of the filter lists' mean test MSE
   vs seconds per epoch: it holds when 32-48-64 is on the front (no filter list is at least as fast and more
   accurate), it does not hold when one is at least as fast and more accurate beyond the seeds' noise (Welch,
   Holm over those lists), and is not distinguishable when such a list is better only inside the noise.

Each is also judged against PCA with as many components as the latent size (the best linear code of the same
size): a fourth line says whether the CAEs beat it. A claim judged on models that have not flattened (val MSE
improving by 2 % or more over their last third of epochs), or that do not beat their baselines (PCA at their
latent size and the 2x down/up-sampling), is UNDECIDED with the reason (:func:`benchmarks.evidence.unready`);
its numbers are still given, for the record.

Every MSE here is on pixel values in [-1, 1] (4x the same error on [0, 1]). The published reference for the
baseline (32-48-64, kernel 3, latent 128, learning rate 1e-3, 15 epochs on CIFAR-10) is test MSE 0.0179; the
source normalised its pixels to [-1, 1] too, so the two compare directly.
"""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

import results
from analysis import inference
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
PUBLISHED_RANGE = "[-1, 1]"  # the source normalised pixel values to [-1, 1], as caesweep does
SIGNIFICANCE = evidence.SIGNIFICANCE
# "No linear relation": a straight-line trend that moves the test MSE by less than 5 % of its mean from the
# smallest to the largest latent size of the grid is no relation worth the name (the seeds alone move it by
# 1-6 %, docs/benchmarks.md). The claim holds only when the slope's 90 % interval stays inside this margin.
LATENT_MARGIN = 0.05
EQUIVALENCE_CONFIDENCE = 0.90  # two one-sided tests at 5 % each
STUDY = "architectures"


class Finding(NamedTuple):
    """A published claim, its verdict on the data used (:data:`benchmarks.evidence.VERDICTS`), and the numbers."""

    claim: str
    verdict: str
    evidence: str


def run(plan: RunPlan) -> dict[str, Any]:
    started = time.time()
    space = derived_space(
        plan.definition.space, data=plan.data, image_size=plan.image_size, limit=plan.limit, max_epochs=plan.budget,
        precision=plan.precision,
    )
    opts = sweep_options(plan, space, STUDY, seed=0)
    study = run_study(opts, space)
    table = comparison(with_epoch_seconds(search_trials(study.trials), study.history))
    picks = best_per_filters(table)
    # --seeds fresh seeds per filter list, beside the selected run (which is no evidence for itself).
    study = confirm_study(opts, picks["trial_id"].tolist(), plan.seeds + 1)
    trials = with_epoch_seconds(study.trials, study.history)
    filters = with_seeds(picks, trials)
    gains = evidence.flattening(study.history, trials.loc[trials["status"] == results.COMPLETE, "trial_id"])
    findings = judge(table, filters, gains)
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
        "pixel_range": "[-1, 1]",
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
    """``picks`` with their test MSE over the fresh training seeds (the confirm repeats, the selected run left out):
    the values, mean, s.d. and n, the repeats' trial ids (``runs``), the selected run's own test MSE apart
    (``test_mse_selected``), and seconds per epoch averaged over every run of the configuration."""
    rows = []
    for pick in picks.to_dict("records"):
        runs = seed_runs(trials, pick["trial_id"])
        fresh = runs[runs["trial_id"].astype(str) != str(pick["trial_id"])]
        values = fresh["test_mse"].astype(float).tolist()
        rows.append({**pick, "test_mse_selected": pick["test_mse"], "test_mse_seeds": values,
                     "test_mse_mean": float(np.mean(values)) if values else math.nan,
                     "test_mse_sd": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
                     "n": len(values), "runs": fresh["trial_id"].astype(str).tolist(),
                     "seconds_per_epoch": float(runs["seconds_per_epoch"].mean()) if len(runs)
                     else pick["seconds_per_epoch"]})
    columns = [*picks.columns, "test_mse_selected", "test_mse_seeds", "test_mse_mean", "test_mse_sd", "n", "runs"]
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
                "size the models are early in training, so the claims above wait for trained models (UNDECIDED); "
                "train longer or on more images for a verdict.")
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


def judge(table: pd.DataFrame, filters: pd.DataFrame, gains: pd.Series | None = None) -> list[Finding]:
    """The three published findings and the PCA check (see the module docstring); each UNDECIDED, with the reason,
    when the models it rests on have not flattened or do not beat their baselines (``gains``: each trial's
    :func:`benchmarks.evidence.last_third_gain` by trial id; none given: unknown, so nothing is decided)."""
    gains = pd.Series(dtype=float) if gains is None else gains
    fresh = [str(t) for runs in filters.get("runs", pd.Series(dtype=object)) for t in runs]
    lists = unready_lists(filters, gains)
    grid = evidence.unready([gains.get(str(t), math.nan) for t in table["trial_id"]], "architectures",
                            _beaten(table, "test_mse"), BASELINES, "architectures")
    found = [_deeper_is_better(filters), _latent_not_linear(table), _tradeoff(filters), _beats_pca(filters)]
    pca_check = evidence.unready([gains.get(t, math.nan) for t in fresh], "fresh runs")
    return [_wait(f, reason) for f, reason in zip(found, (lists, grid, lists, pca_check), strict=True)]


BASELINES = "both baselines (PCA at their latent size and 2x down/up-sampling)"


def unready_lists(filters: pd.DataFrame, gains: pd.Series) -> str:
    """Why the filter lists' fresh runs cannot carry a verdict ("" when they can): not all flattened, or a list's
    mean does not beat both baselines."""
    fresh = [str(t) for runs in filters["runs"] for t in runs] if "runs" in filters else []
    return evidence.unready([gains.get(t, math.nan) for t in fresh], "fresh runs of the compared configurations",
                            _beaten(filters, "test_mse_mean"), BASELINES, "filter lists (mean over fresh seeds)")


def _beaten(rows: pd.DataFrame, mse: str) -> list[bool]:
    """Per row: is ``mse`` below both its PCA and its trivial baseline? (No PCA number counts as not beaten.)"""
    return [bool(m < p and m < t) for m, p, t in zip(rows[mse], rows["pca_mse"], rows["trivial_mse"], strict=True)]


def _wait(finding: Finding, reason: str) -> Finding:
    """``finding`` made UNDECIDED when its models are not ready, its numbers kept for the record."""
    if not reason:
        return finding
    return Finding(finding.claim, UNDECIDED, f"{reason}: a verdict waits for trained models. For the record, these "
                   f"models give {finding.verdict}: {finding.evidence}")


def _seeds(row: Any) -> list[float]:
    return [float(v) for v in row["test_mse_seeds"]]


def _deeper_is_better(filters: pd.DataFrame) -> Finding:
    claim = "deeper models with more filters reach lower MSE"
    if len(filters) < 2:
        return Finding(claim, UNDECIDED, f"only {len(filters)} filter list(s) finished")
    rows = filters.to_dict("records")
    tests = evidence.adjusted([evidence.compare(_seeds(large), _seeds(small))
                               for small, large in zip(rows, rows[1:], strict=False)])
    steps = [c.describe(large["filters"], small["filters"])
             for c, small, large in zip(tests, rows, rows[1:], strict=False)]
    lower = [c.lower for c in tests]
    rho = float(stats.spearmanr(filters["size"], filters["test_mse_mean"]).statistic) if len(filters) > 2 else math.nan
    if all(side == "a" for side in lower):
        verdict = HOLDS
    elif any(side == "b" for side in lower):
        verdict = DOES_NOT_HOLD
    else:
        verdict = NOT_DISTINGUISHABLE
    return Finding(claim, verdict, "each filter list's best configuration, test MSE over fresh training seeds, "
                   f"larger vs next smaller (Welch, p Holm-adjusted over {len(tests)} step(s)): {'; '.join(steps)}; "
                   f"Spearman rho of size vs mean test MSE = {rho:.2f}")


def _latent_not_linear(table: pd.DataFrame) -> Finding:
    claim = "no linear relation between latent size and MSE"
    table = table.dropna(subset=["latent_dim", "test_mse"])
    groups = (table["filters"].astype(str) + " k" + table["kernel_size"].astype(str)).tolist()
    x, y = table["latent_dim"].astype(float), table["test_mse"].astype(float)
    wide = inference.slope(x, y, groups, 0.95)
    if table["latent_dim"].nunique() < 2 or math.isnan(wide.slope):
        return Finding(claim, UNDECIDED, f"{len(table)} architectures, {table['latent_dim'].nunique()} latent "
                       "size(s): no slope within a filter list can be estimated")
    narrow = inference.slope(x, y, groups, EQUIVALENCE_CONFIDENCE)
    span, level = float(x.max() - x.min()), float(y.mean())

    def share(v: float) -> str:
        return f"{v * span / level:+.1%}"

    numbers = (f"test MSE regressed on latent size with one intercept per filter list and kernel (n = {wide.n} "
               f"architectures, training seed 0, {wide.df} residual df): from latent {x.min():.0f} to {x.max():.0f} "
               f"the fitted MSE changes by {share(wide.slope)} of its mean ({level:.4g}), 90 % CI "
               f"{share(narrow.low)} to {share(narrow.high)}, 95 % CI {share(wide.low)} to {share(wide.high)}; "
               f"equivalence margin +-{LATENT_MARGIN:.0%}")
    if narrow.low * span / level > -LATENT_MARGIN and narrow.high * span / level < LATENT_MARGIN:
        return Finding(claim, HOLDS, f"{numbers}: the 90 % interval lies inside the margin")
    if wide.excludes_zero():
        return Finding(claim, DOES_NOT_HOLD, f"{numbers}: the 95 % interval excludes 0, a linear relation")
    return Finding(claim, UNDECIDED, f"{numbers}: the 95 % interval includes 0 but also changes beyond the margin, so "
                   "the data show neither a linear relation nor its absence")


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
    published = filters[filters["filters"] == PUBLISHED_TRADEOFF]
    if len(filters) < 2 or published.empty:
        return Finding(claim, UNDECIDED, f"{len(filters)} filter list(s) finished"
                       + ("" if len(published) else f", {PUBLISHED_TRADEOFF} not among them"))
    front = pareto_front(filters)
    ours = published.iloc[0]
    on_front = ", ".join(f"{r.filters} ({r.test_mse_mean:.4g}, {r.seconds_per_epoch:.2g} s/epoch)"
                         for r in front.itertuples())
    point = knee(front)
    where = (f"Pareto front of mean test MSE vs seconds per epoch: {on_front}; its knee (nearest the ideal corner): "
             f"{'' if point is None else point['filters']}")
    faster = filters[(filters["filters"] != PUBLISHED_TRADEOFF)
                     & (filters["seconds_per_epoch"] <= ours["seconds_per_epoch"])
                     & (filters["test_mse_mean"] < ours["test_mse_mean"])]
    if faster.empty:
        return Finding(claim, HOLDS, f"{where}; {PUBLISHED_TRADEOFF} is on the front ({ours['test_mse_mean']:.4g} at "
                       f"{ours['seconds_per_epoch']:.2g} s/epoch): no filter list is both as fast and more accurate")
    tests = evidence.adjusted([evidence.compare(_seeds(ours), _seeds(row)) for row in faster.to_dict("records")])
    listed = "; ".join(c.describe(PUBLISHED_TRADEOFF, f"{row['filters']} ({row['seconds_per_epoch']:.2g} s/epoch)")
                       for c, row in zip(tests, faster.to_dict("records"), strict=True))
    beyond = any(c.lower == "b" for c in tests)
    verdict = DOES_NOT_HOLD if beyond else NOT_DISTINGUISHABLE
    how = ("is at least as fast and more accurate beyond the seeds' noise" if beyond
           else "is at least as fast with a lower mean, but no difference is detected")
    return Finding(claim, verdict, f"{where}; off the front: a filter list {how} (Welch, p Holm-adjusted over "
                   f"{len(tests)}): {listed}")


def _beats_pca(filters: pd.DataFrame) -> Finding:
    claim = "(check) the CAEs beat PCA with as many components as their latent size"
    known = filters[filters["pca_mse"].notna()] if len(filters) else filters
    if known.empty:
        return Finding(claim, UNDECIDED, "no PCA baseline recorded")
    rows = known.to_dict("records")
    tests = evidence.adjusted([evidence.against_value(_seeds(row), float(row["pca_mse"])) for row in rows])
    parts = [f"{row['architecture']} {c.describe('CAE', 'PCA-' + str(int(row['latent_dim'])))}"
             for c, row in zip(tests, rows, strict=True)]
    sides = [c.lower for c in tests]
    verdict = (HOLDS if all(s == "a" for s in sides) else DOES_NOT_HOLD if any(s == "b" for s in sides)
               else NOT_DISTINGUISHABLE)
    return Finding(claim, verdict, f"one-sample t-tests over the fresh seeds, p Holm-adjusted over {len(tests)}: "
                   + "; ".join(parts))


def blocks(
    plan: RunPlan, table: pd.DataFrame, filters: pd.DataFrame, findings: list[Finding], baseline: dict[str, Any] | None,
    result: dict[str, Any], name: str,
) -> list[Block]:
    """The result as report blocks (rendered to table.md and the terminal)."""
    space = plan.definition.space
    intro = (f"{plan.data_note}. Profile {plan.profile}: grid of {space.samples} configurations, {plan.budget} "
             f"epoch(s) each (published: 15), {plan.image_size}x{plan.image_size} RGB, "
             f"{'all images' if plan.limit is None else f'at most {plan.limit} images per split'}; the best "
             f"configuration of each filter list trained again with {plan.seeds} fresh training seed(s) (same "
             f"split). Study: {name} ({output.study_command(plan.folder, [name])}). Every MSE is on pixel values in "
             "[-1, 1], 4x the same error on [0, 1].")
    if baseline is None:
        reference = "The baseline 32-48-64 k3 z128 did not finish here."
    else:
        reference = (f"Baseline {baseline['architecture']}: test MSE {baseline['test_mse']:.4g} (training seed 0; "
                     f"published on CIFAR-10 after 15 epochs: {PUBLISHED_BASELINE_MSE}, whose source normalised "
                     f"pixels to {PUBLISHED_RANGE} as here, so the values compare directly, data and training "
                     f"length apart; on the same test images the trivial 2x down/up-sampling baseline scores "
                     f"{baseline['trivial_mse']:.4g} and PCA with 128 components {baseline['pca_mse']:.4g}).")
    shown = table.drop(columns=["val_mse", "trivial_mse", "trial_id"])
    per_filters = filters[["filters", "architecture", "lr", "test_mse_selected", "test_mse_mean", "test_mse_sd", "n",
                           "pca_mse", "seconds_per_epoch", "params"]] if len(filters) else filters
    return [
        Text(intro),
        Heading("Comparison (each architecture at its better learning rate, training seed 0)"),
        Table(shown),
        Heading("Each filter list's best configuration over fresh training seeds"),
        Text("test_mse_selected is the search's own run (seed 0), which won the selection and is no evidence for "
             "itself; the mean, s.d. and n are over the fresh seeds only (training-seed variance; same split, so "
             "the test images are the same in every run)."),
        Table(per_filters, formats={"test_mse_mean": "test_mse", "test_mse_sd": "test_mse"}),
        Heading("Published findings on this data"),
        Bullets([f"{f.claim}: {f.verdict}. {f.evidence}." for f in findings]),
        Text(result["flattening"]["sentence"] + "."),
        Text(against_trivial(table)),
        Text(reference),
        Image("tradeoff.png", "test MSE vs seconds per epoch; the line is the Pareto front of the filter lists"),
    ]
