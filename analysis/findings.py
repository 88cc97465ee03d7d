"""Findings: the report's tables turned into sentences that carry their numbers.

Each function reads one table and returns sentences (plain text; renderers escape them). A statement that
rests on few trials says so, because a 5-trial "trend" is mostly noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from analysis import inference, tables
from analysis.importance import Importance
from analysis.metrics import fmt, fmt_ci, label
from results import COMPLETE, FAILED, PENDING, PRUNED, RUNNING

SMALL_N = 10  # fewer trials than this behind a correlation: say it is uncertain
SMALL_IMPORTANCE = 20  # importance estimates from fewer trials than this are uncertain
ALPHA = inference.ALPHA  # a comparison or correlation with a larger (Holm-adjusted) p-value is not detected
# Samplers that draw every trial independently of the results so far; any other sampler (TPE, CMA-ES, GP,
# NSGA-II, keras-tuner's) chooses where to sample from earlier results.
INDEPENDENT_SAMPLERS = frozenset({"random", "grid", "qmc"})
_COSTS = {"params": "size", "train_seconds": "training time"}
SHOW = 3  # how many items a sentence lists (top parameters, Pareto points)


def trials(count: int, kind: str = "") -> str:
    """``"1 finished trial"``, ``"3 finished trials"``."""
    return f"{count} {kind + ' ' if kind else ''}trial{'' if count == 1 else 's'}"


def status(counts: pd.DataFrame, failures: pd.DataFrame, study_status: str | None) -> list[str]:
    """How many trials ended how, the most common failure reasons, and what is still running."""
    n = dict(zip(counts["status"], counts["n"], strict=True))
    total = sum(int(v) for k, v in n.items() if " without " not in k)
    parts = [f"{n.get(s, 0)} {s.lower()}" for s in (COMPLETE, PRUNED, FAILED) if n.get(s, 0)]
    waiting = n.get(RUNNING, 0) + n.get(PENDING, 0)
    if waiting:
        parts.append(f"{waiting} still running or pending")
    sentences = [f"{trials(total)}: {', '.join(parts) or 'none ended yet'}."]
    for key, count in n.items():
        if " without " in key:
            metric = key.split(" without ")[1]
            verb = "reports" if count == 1 else "report"
            sentences.append(f"{trials(count, 'complete')} {verb} no {label(metric)}: counted, not ranked.")
    if study_status in ("running", "interrupted"):
        sentences.append(f"The study is {study_status}: this report covers the trials that had ended.")
    for kind in (FAILED, PRUNED):
        rows = failures[failures["status"] == kind]
        if len(rows):
            top = rows.iloc[0]
            sentences.append(
                f"Most common reason for {kind.lower()} trials: \"{top['reason']}\" ({top['n']} of {n.get(kind, 0)})."
            )
    return sentences


def best(ranked: pd.DataFrame, metric: str) -> list[str]:
    """The best trial (first row of the ranked finished trials) and its test scores against the baselines.

    With a PCA baseline (reconstruction, denoising) the trial is judged against PCA at its code size first,
    and a model with skip connections is said to be not compression-matched; the trivial baseline follows.
    """
    if ranked.empty:
        return [f"No finished trial reports a {label(metric)}, so nothing is ranked."]
    top = ranked.iloc[0]
    sentence = f"Best trial {top['trial_id']} ({top['architecture']}): {label(metric)} {fmt(metric, top[metric])}"
    if pd.isna(top["test_mse"]) or pd.isna(top["trivial_mse"]) or pd.isna(top["skill"]):
        return [sentence + "; it has no test scores, so its distance to the trivial baseline is unknown."]
    if pd.notna(top.get("pca_mse")) and pd.notna(top.get("skill_pca")):
        return [sentence + ", " + _against_pca(top), _against_trivial(top)]
    sentence += (
        f", test MSE {_test_mse(top)} against {fmt('trivial_mse', top['trivial_mse'])} "
        "for the trivial baseline"
    )
    if top["skill"] > 0:
        sentence += f" (skill {fmt('skill', top['skill'])}: {top['skill']:.0%} lower error)."
    else:
        sentence += f" (skill {fmt('skill', top['skill'])}): no better than the trivial baseline."
    return [sentence]


def _test_mse(top: pd.Series) -> str:
    """The best trial's test MSE, with its 95 % interval over the test images when the trial table has one."""
    ci = fmt_ci("test_mse", top["test_mse"], top.get("test_mse_ci95"))
    return f"{ci} (95 % CI over the test images)" if ci else fmt("test_mse", top["test_mse"])


def _against_pca(top: pd.Series) -> str:
    """``"test MSE ... against ... for PCA with k components ..."``: the judgement of a reconstruction."""
    k = fmt("pca_k", top.get("pca_k"))
    text = (
        f"test MSE {_test_mse(top)} against {fmt('pca_mse', top['pca_mse'])} for PCA with "
        f"{k or 'latent_dim'} components, the best linear code of the same size"
    )
    if top["skill_pca"] > 0:
        text += f" (skill vs PCA {fmt('skill_pca', top['skill_pca'])}: {top['skill_pca']:.0%} lower error)"
    else:
        text += f" (skill vs PCA {fmt('skill_pca', top['skill_pca'])}): no better than PCA"
    if tables.pca_comparison(top["pca_mse"], top.get("pca_matched")) == tables.NOT_MATCHED:
        text += "; not compression-matched: its skip connections bypass the bottleneck, so its code is larger"
    return text + "."


def _against_trivial(top: pd.Series) -> str:
    """The best trial against the trivial baseline, said after PCA: a sanity floor, not the judgement."""
    return (
        f"Against the trivial baseline it scores skill {fmt('skill', top['skill'])} (test MSE "
        f"{fmt('trivial_mse', top['trivial_mse'])}; for reconstruction that is 2x down/up-sampling, which keeps "
        "a quarter of the values, more than the latent)."
    )


def seeds(table: pd.DataFrame, repeats: pd.DataFrame, basis: str, confirm: Mapping[str, Any] | None) -> list[str]:
    """What the seed repeats say: how many ran, each re-trained configuration's mean and 95 % CI over its fresh
    seeds (on ``basis``, :func:`analysis.tables.seed_metric`) next to its selected run, the test of each against
    the best mean, and whether the search's own first place held up.

    ``table`` is :func:`analysis.tables.seed_statistics`; ``confirm`` the study's ``{"top": K, "repeats": R}``.
    """
    if repeats.empty and not confirm:
        return []
    asked = f" (confirm: top {confirm.get('top')}, {confirm.get('repeats')} new seeds each)" if confirm else ""
    if repeats.empty:
        return [f"Seed repeats were asked for{asked}, but none has been recorded yet."]
    counts = repeats["status"].value_counts()
    ended = ", ".join(f"{counts[s]} {s.lower()}" for s in (COMPLETE, FAILED, PRUNED, RUNNING, PENDING) if s in counts)
    sentences = [f"Seed repeats{asked}: {len(repeats)} run{'' if len(repeats) == 1 else 's'}, {ended}."]
    shown = table[table[f"{basis}_seed_ci95"].notna()]
    if len(shown):
        items = "; ".join(
            f"{_name(r)}: {label(basis)} {fmt_ci(basis, r[f'{basis}_seed_mean'], r[f'{basis}_seed_ci95'])} "
            f"(n = {r['n_seeds']}; selected run {fmt(basis, r[f'{basis}_selected'])})"
            for _, r in shown.iterrows()
        )
        split = (shown["variance"] == tables.SPLIT_VARIANCE).any()
        where = ("Over fresh training seeds and data splits, mean ± 95 % CI (training-seed and split variance: "
                 "the test images differ between splits" if split else
                 "Over fresh training seeds, same data split, mean ± 95 % CI (training-seed variance only")
        sentences.append(f"{where}; the selected run is left out: it won the ranking on its own scores, so it is no "
                         f"evidence for itself): {items}.")
    lonely = table[table[f"{basis}_seed_ci95"].isna()]["trial_id"].tolist()
    if lonely:
        have = "it has" if len(lonely) == 1 else "they have"
        sentences.append(f"{', '.join(lonely)}: fewer than 2 fresh seeds finished with test scores, so {have} no "
                         "interval over seeds and no test against the best.")
    return sentences + _seed_verdict(table[table["vs_best"] != ""], basis)


def _name(row: Mapping[str, Any]) -> str:
    return f"{row['architecture']} ({row['trial_id']})"


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def _seed_verdict(tested: pd.DataFrame, basis: str) -> list[str]:
    """Each confirmed configuration tested against the best mean over fresh seeds, and whether the search's first
    place among them still stands."""
    if len(tested) < 2:
        return []
    best = tested[tested["vs_best"] == tables.BEST].iloc[0]
    others = len(tested) - 1
    parts = []
    for kind in (tables.WORSE, tables.NO_DIFFERENCE):
        rows = tested[tested["vs_best"] == kind]
        if len(rows):
            listed = ", ".join(f"{_name(r)} ({_p(r['p_vs_best'])})" for _, r in rows.iterrows())
            parts.append(f"{'worse' if kind == tables.WORSE else 'no difference detected'}: {listed}")
    sentence = (f"Against the best mean over fresh seeds, {_name(best)} (Welch's t-test on {label(basis)}, "
                f"Holm-adjusted over {others} comparison{'' if others == 1 else 's'}): {'; '.join(parts)}.")
    if (tested["vs_best"] == tables.NO_DIFFERENCE).any():
        sentence += (" No difference detected is not equality: with a few seeds a side the test misses "
                     "differences of a few standard deviations.")
    sentences = [sentence]
    first = tested.iloc[0]  # rows follow the search's ranking
    if first["trial_id"] != best["trial_id"]:
        if first["vs_best"] == tables.WORSE:
            sentences.append(
                f"The search ranked {_name(first)} first among these, but over fresh seeds it is worse than "
                f"{_name(best)} ({_p(first['p_vs_best'])}): a single seed's ranking did not hold."
            )
        else:
            sentences.append(
                f"The search ranked {_name(first)} first among these; over fresh seeds {_name(best)} has the better "
                f"mean {label(basis)}, but no difference between them is detected ({_p(first['p_vs_best'])}), so "
                "the seeds neither confirm nor overturn the search's order."
            )
    return sentences


def beat_baseline(done: pd.DataFrame) -> list[str]:
    """How many finished trials beat the trivial baseline, and PCA at their code size (skip models apart)."""
    skill = done["skill"].dropna()
    sentences = []
    if not skill.empty:
        sentences.append(
            f"{int((skill > 0).sum())} of {trials(len(skill), 'finished')} beat the trivial baseline (skill > 0)."
        )
    if "skill_pca" not in done:
        return sentences
    with_pca = done.dropna(subset=["skill_pca"])
    if with_pca.empty:
        return sentences
    flags = [tables.pca_comparison(m, f) for m, f in zip(with_pca["pca_mse"], with_pca["pca_matched"], strict=True)]
    matched = with_pca[[flag == tables.MATCHED for flag in flags]]
    skipping = with_pca[[flag == tables.NOT_MATCHED for flag in flags]]
    sentence = (
        f"{int((matched['skill_pca'] > 0).sum())} of {trials(len(matched), 'compression-matched')} beat PCA with "
        "as many components as their latent units (skill vs PCA > 0)"
    )
    if len(skipping):
        sentence += (
            f"; {int((skipping['skill_pca'] > 0).sum())} of {trials(len(skipping))} with skip connections do, but "
            "they bypass the bottleneck, so their comparison is not compression-matched"
        )
    return sentences + [sentence + "."]


# A colouriser's predictions within this factor of the truth's colourfulness are "about as colourful"; below it
# they are washed out, above it they invent colour. The panel of Hasler and Susstrunk put a step of their scale
# (e.g. 33 "moderately" to 45 "averagely" colourful) at about this ratio.
COLOURFUL_RATIO = 0.75


def colorfulness(ranked: pd.DataFrame, metric: str, task: Any = None) -> list[str]:
    """For colorization trials: how colourful the best trial's test predictions are next to the truth, the range
    over the finished trials, and where the most colourful one ranks. ``ranked`` is the finished trials, best
    first; ``task`` the study's, for trial tables without a ``task`` column."""
    if "test_colorfulness" not in ranked or "truth_colorfulness" not in ranked:
        return []
    tasks = ranked["task"].fillna(task) if "task" in ranked else pd.Series(task, index=ranked.index)
    rows = ranked[tasks.astype(str).str.startswith("colorize-")].dropna(subset=["test_colorfulness",
                                                                              "truth_colorfulness"])
    if rows.empty:
        return []
    top = rows.iloc[0]
    predicted, truth = float(top["test_colorfulness"]), float(top["truth_colorfulness"])
    ratio = predicted / truth if truth > 0 else float("nan")
    if ratio < COLOURFUL_RATIO:
        verdict = "washed out, as MSE rewards"
    elif ratio > 1 / COLOURFUL_RATIO:
        verdict = "more colourful than the truth: it invents colour"
    else:
        verdict = "about as colourful as the truth"
    rank = f"#{int(ranked.index.get_loc(top.name)) + 1} by {label(metric)}"
    sentence = (
        f"Colourfulness (Hasler-Susstrunk, 0-255; 33 is moderately, 59 quite colourful): the best colorization "
        f"trial {top['trial_id']} ({rank}) predicts test images of {predicted:.1f} against {truth:.1f} for the truth "
        f"({ratio:.0%}: {verdict})"
    )
    if len(rows) > 1:
        values = rows["test_colorfulness"]
        most = rows.loc[values.idxmax()]
        sentence += (
            f"; over {trials(len(rows), 'finished')} it ranges {values.min():.1f}-{values.max():.1f}, the most "
            f"colourful being {most['trial_id']} (#{int(ranked.index.get_loc(most.name)) + 1} by {label(metric)})"
        )
    return [sentence + "."]


def importance(result: Importance, metric: str, n_done: int) -> list[str]:
    """Which hyperparameters matter most, by fANOVA, and whether PED-ANOVA agrees."""
    if result.table.empty:
        return [result.note[0].upper() + result.note[1:] + "."] if result.note else []
    table = result.table
    listed = ", ".join(f"{label(r.param)} {r.fanova:.2f}" for r in table.head(SHOW).itertuples())
    sentence = f"Hyperparameters that matter most for {label(metric)} (fANOVA, {trials(n_done)}): {listed}"
    ped_first = table.sort_values("ped_anova", ascending=False, kind="stable").iloc[0]
    if ped_first["param"] == table.iloc[0]["param"]:
        sentence += "; PED-ANOVA agrees on the first."
    else:
        sentence += (
            f"; PED-ANOVA ranks {label(ped_first['param'])} first ({ped_first['ped_anova']:.2f}), "
            "so the order is not settled."
        )
    if n_done < SMALL_IMPORTANCE:
        sentence += f" With fewer than {SMALL_IMPORTANCE} trials these estimates are uncertain."
    if result.note:  # a caveat on the numbers (a large study's sample)
        sentence += f" {result.note[0].upper()}{result.note[1:]}."
    return [sentence]


def adaptive(sampler: str | None) -> list[str]:
    """Said before the group comparisons and correlations when the trials were not independent draws."""
    if not sampler or sampler in INDEPENDENT_SAMPLERS:
        return []
    return [f"The group comparisons and correlations below rest on adaptively sampled trials ({sampler} chose "
            "each trial from the results before it, sampling more where scores were good), not on independent "
            "draws: their tests describe these trials, not the whole space."]


def correlations(table: pd.DataFrame, metric: str, mode: str, sampler: str | None = None) -> list[str]:
    """One sentence per numeric hyperparameter: Spearman's rho, its Holm-adjusted p-value and n, and what it
    means; a relation is said only where the adjusted p-value is below :data:`ALPHA`."""
    sentences = []
    family = len(table)
    adapted = "" if not sampler or sampler in INDEPENDENT_SAMPLERS else ", adaptively sampled trials"
    for row in table.itertuples():
        p = "p < 0.001" if row.p_holm < 0.001 else f"p = {row.p_holm:.2f}"
        text = (f"{label(row.param)} vs {label(metric)}: Spearman rho = {row.rho:.2f} (Holm-adjusted {p} over "
                f"{family} hyperparameter{'' if family == 1 else 's'}{adapted}), n = {row.n}: ")
        better = (row.rho < 0) == (mode == "min")
        direction = f"larger {label(row.param)} goes with {'better' if better else 'worse'} {label(metric)}"
        if row.p_holm < ALPHA:
            text += f"{row.strength} monotone relation, {direction}"
        else:
            text += "no monotone relation detected"
            if row.strength != "none":
                text += f" (the estimate is {row.strength}: {direction})"
        if row.n < SMALL_N:
            text += f"; uncertain with only {row.n} trials"
        sentences.append(text + ".")
    return sentences


def groups(summaries: dict[str, pd.DataFrame], metric: str, mode: str, sampler: str | None = None) -> list[str]:
    """For each scientific hyperparameter: the value with the best mean, and each other value tested against it
    (:func:`analysis.tables.group_summary`); "best on average" only when every other value is worse by the test.
    Pruned trials, which are not in the means, are counted per value."""
    sentences = []
    mean = f"{metric} mean"
    for param, table in summaries.items():
        if len(table) < 2:
            continue
        tested = table[table["vs_best"] != ""]
        if tested.empty:
            first = table.sort_values(mean, ascending=mode == "min", kind="stable").iloc[0]
            text = (f"{label(param)}: {fmt(param, first[param])} has the best mean {label(metric)} "
                    f"({fmt(metric, first[mean])}, n = {int(first['n'])}); no two values have 2 finished trials "
                    "each, so nothing is tested")
        else:
            text = _group_sentence(param, table, metric)
        if table["pruned"].sum():
            counts = ", ".join(f"{int(r['pruned'])} of {fmt(param, r[param])}" for _, r in table.iterrows()
                               if r["pruned"])
            text += (f"; pruned trials are not in these means ({counts}): a scheduler stops the trials that look "
                     "worse early, so a value with many pruned trials looks better in its mean than its trials were")
        sentences.append(text + ".")
    return (adaptive(sampler) if sentences else []) + sentences


def _group_sentence(param: str, table: pd.DataFrame, metric: str) -> str:
    mean = f"{metric} mean"
    best = table[table["vs_best"] == tables.BEST].iloc[0]
    others = table[table.index != best.name]
    worse = others[others["vs_best"] == tables.WORSE]
    tested = others[others["vs_best"] != ""]
    head = f"{fmt(param, best[param])}"
    where = f"(mean {label(metric)} {fmt(metric, best[mean])}, n = {int(best['n'])})"
    test = (f"Welch's t-test against {head}, Holm-adjusted over {len(tested)} comparison"
            f"{'' if len(tested) == 1 else 's'}")

    def listed(rows: pd.DataFrame, p: bool = True) -> str:
        return ", ".join(f"{fmt(param, r[param])} ({fmt(metric, r[mean])}, n = {int(r['n'])}"
                         + (f", {_p(r['p_vs_best'])})" if p else ")") for _, r in rows.iterrows())

    if len(worse) == len(others):
        return f"{label(param)}: {head} is best on average {where}: every other value is worse ({listed(worse)}; " \
            f"{test})"
    parts = [f"{label(param)}: {head} has the best mean {label(metric)} ({fmt(metric, best[mean])}, n = "
             f"{int(best['n'])})"]
    if len(worse):
        parts.append(f"worse: {listed(worse)}")
    same = others[others["vs_best"] == tables.NO_DIFFERENCE]
    if len(same):
        parts.append(f"no difference detected: {listed(same)}")
    untested = others[others["vs_best"] == ""]
    if len(untested):
        parts.append(f"untested (fewer than 2 finished trials): {listed(untested, p=False)}")
    return "; ".join(parts) + f" ({test})"


def pareto(front: pd.DataFrame, metric: str, cost: str, n_done: int) -> list[str]:
    """The best trade-off architectures between ``metric`` and ``cost``."""
    if front.empty:
        return []
    listed = "; ".join(
        f"{r['architecture']} ({_amount(cost, r[cost])}, {label(metric)} {fmt(metric, r[metric])})"
        for _, r in front.head(SHOW).iterrows()
    )
    more = f" and {len(front) - SHOW} more" if len(front) > SHOW else ""
    return [
        f"Best trade-offs between {label(metric)} and {_COSTS.get(cost, label(cost))} "
        f"(Pareto set, {len(front)} of {trials(n_done)}): "
        f"{listed}{more}."
    ]


def _amount(cost: str, value: float) -> str:
    units = {"params": "parameters", "train_seconds": "s of training"}
    return f"{fmt(cost, value)} {units.get(cost, label(cost))}"


def comparison(table: pd.DataFrame, metric: str, mode: str) -> list[str]:
    """Which of several studies reached the best ``metric``, each with the N its best is the best of."""
    column = f"best {metric}"
    ranked = table.dropna(subset=[column]).sort_values(column, ascending=mode == "min", kind="stable")
    if len(ranked) < 2:
        return []
    listed = ", ".join(f"{r['study']} {fmt(metric, r[column])} (best of {trials(int(r['complete']), 'finished')})"
                       for _, r in ranked.iterrows())
    sentence = (f"Best {label(metric)} by study: {listed} (best first; compare skill when the tasks differ). Each "
                "is one run, the best of its study's N: the best of more trials is better by selection alone, so "
                "unequal N favour the larger study, and these values are not tested against each other.")
    if ranked["complete"].min() < SMALL_N:
        sentence += f" A study with fewer than {SMALL_N} finished trials makes this ranking uncertain."
    return [sentence]
