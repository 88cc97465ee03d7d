"""Draw a report's figures from its tables (seaborn on matplotlib; no computation beyond reshaping).

Figures are :class:`matplotlib.figure.Figure` objects made without pyplot, so drawing needs no display and
leaves no global state behind; :func:`png` turns one into PNG bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.build import Comparison, StudyReport
from analysis.images import ImageGrid
from analysis.metrics import label
from analysis.tables import MAX_LEVELS, level_order

STYLE = "whitegrid"
WIDTH = 11.0  # inches; at DPI this is about 1100 px, wide enough for a browser and for print
DPI = 100
LOG_PARAMS = ("lr",)  # hyperparameters drawn on a log axis
PANEL_COLUMNS = 3


def figures(report: StudyReport) -> dict[str, Figure]:
    """Every figure the tables of ``report`` support, by file stem."""
    out: dict[str, Figure] = {}
    if not report.curves.empty:
        out["learning_curves"] = learning_curves(report.curves)
    if not report.done.empty and report.compared:
        out["metric_vs_hyperparameters"] = metric_vs_params(report.done, report.compared, report.metric)
    if report.history[report.metric].notna().any():
        out["optimization_history"] = optimization_history(report.history, report.metric)
    if not report.importance.table.empty:
        out["importance"] = importance_bars(report.importance.table)
    if not report.done.empty:
        out["pareto"] = pareto_fronts(report.done, report.pareto, report.metric)
    return out


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def learning_curves(curves: pd.DataFrame) -> Figure:
    """Train (dashed) and val (solid) curves per epoch of the top trials, on a log axis."""
    measure = str(curves["measure"].iloc[0])
    with sns.axes_style(STYLE):
        fig = Figure(layout="constrained", figsize=(WIDTH, 4.5))
        ax = fig.subplots()
        sns.lineplot(
            data=curves, x="epoch", y="value", hue="trial", style="split", style_order=["val", "train"],
            markers=True, dashes={"val": "", "train": (4, 2)}, ax=ax,
        )
        ax.set(yscale="log", xlabel="epoch", ylabel=f"{measure.upper()} (log scale)",
               title=f"Learning curves of the top {curves['trial'].nunique()} trials (train dashed, val solid)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def metric_vs_params(done: pd.DataFrame, params: list[str], metric: str) -> Figure:
    """One panel per hyperparameter: every finished trial's metric, with the mean per value for categories."""
    rows = math.ceil(len(params) / PANEL_COLUMNS)
    columns = min(len(params), PANEL_COLUMNS)
    with sns.axes_style(STYLE):
        fig = Figure(layout="constrained", figsize=(WIDTH, 3.4 * rows))
        axes = fig.subplots(rows, columns, squeeze=False).ravel()
        for ax, param in zip(axes, params, strict=False):
            _metric_vs_param(ax, done, param, metric)
        for ax in axes[len(params):]:
            ax.set_visible(False)
        fig.suptitle(f"{label(metric)} of each finished trial vs each hyperparameter")
    return fig


def _metric_vs_param(ax: Axes, done: pd.DataFrame, param: str, metric: str) -> None:
    values = done[param]
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and values.nunique() > MAX_LEVELS:
        sns.scatterplot(data=done, x=param, y=metric, ax=ax)
        if param in LOG_PARAMS:
            ax.set_xscale("log")
    else:
        data = done.assign(**{param: values.astype(str)})
        order = [str(v) for v in level_order(values)]
        sns.stripplot(data=data, x=param, y=metric, order=order, ax=ax, alpha=0.7)
        sns.pointplot(data=data, x=param, y=metric, order=order, ax=ax, errorbar=None, color="black",
                      markers="_", markersize=20, linestyle="none")
        ax.tick_params(axis="x", labelrotation=30 if max(len(o) for o in order) > 6 else 0)
    ax.set(xlabel=label(param), ylabel=label(metric))


def optimization_history(history: pd.DataFrame, metric: str) -> Figure:
    """The metric of each trial and the best so far, against trial number and against compute spent."""
    done = history[history[metric].notna()]
    with sns.axes_style(STYLE):
        fig = Figure(layout="constrained", figsize=(WIDTH, 4))
        axes = fig.subplots(1, 2, sharey=True)
        for ax, x in zip(axes, ("number", "cumulative_seconds"), strict=True):
            ax.scatter(done[x], done[metric], s=18, alpha=0.6, label="finished trial")
            ax.step(history[x], history["best_so_far"], where="post", color="C3", label="best so far")
            ax.set(xlabel="trial number" if x == "number" else label(x), ylabel=label(metric))
        axes[0].legend(fontsize="small")
        axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.suptitle(f"Optimization history: {label(metric)} (pruned and failed trials count as compute)")
    return fig


def importance_bars(table: pd.DataFrame) -> Figure:
    """Horizontal bars: each hyperparameter's importance by fANOVA and by PED-ANOVA (each sums to 1)."""
    long = table.melt(
        id_vars="param", value_vars=["fanova", "ped_anova"], var_name="evaluator", value_name="importance"
    )
    long["evaluator"] = long["evaluator"].map({"fanova": "fANOVA", "ped_anova": "PED-ANOVA"})
    long["param"] = long["param"].map(label)
    with sns.axes_style(STYLE):
        fig = Figure(layout="constrained", figsize=(WIDTH * 0.7, 0.5 + 0.55 * len(table)))
        ax = fig.subplots()
        sns.barplot(data=long, y="param", x="importance", hue="evaluator", orient="h", ax=ax)
        ax.set(xlabel="importance (share of explained variation)", ylabel="", title="Hyperparameter importance")
    return fig


def pareto_fronts(done: pd.DataFrame, fronts: Mapping[str, pd.DataFrame], metric: str) -> Figure:
    """Metric vs each cost: all finished trials, the Pareto front highlighted and labelled."""
    with sns.axes_style(STYLE):
        fig = Figure(layout="constrained", figsize=(WIDTH, 4.5))
        axes = fig.subplots(1, len(fronts), squeeze=False).ravel()
        for ax, (cost, front) in zip(axes, fronts.items(), strict=True):
            ax.scatter(done[cost], done[metric], s=18, color="0.6", label="finished trial")
            ax.step(front[cost], front[metric], where="post", color="C3", marker="o", label="Pareto front")
            for _, row in front.iterrows():
                ax.annotate(str(row["architecture"]), (row[cost], row[metric]), fontsize=7,
                            xytext=(4, 4), textcoords="offset points")
            ax.set(xlabel=label(cost), ylabel=label(metric), xscale="log" if cost == "params" else "linear")
        axes[0].legend(fontsize="small")
        fig.suptitle(f"Best trade-offs: {label(metric)} vs size and vs training time")
    return fig


def image_grid(grid: ImageGrid) -> Figure:
    """One row per test image: input | prediction | ground truth, with the prediction's MSE."""
    n = len(grid.inputs)
    fig = Figure(layout="constrained", figsize=(6.0, 2.0 * n + 0.6))
    axes = fig.subplots(n, 3, squeeze=False)
    for i in range(n):
        for j, (title, images) in enumerate(
            (("input", grid.inputs), ("prediction", grid.predictions), ("ground truth", grid.truths))
        ):
            ax = axes[i, j]
            ax.imshow(images[i], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title)
        axes[i, 1].set_xlabel(f"MSE {grid.mse[i]:.4g}", fontsize=8)
    fig.suptitle(f"Trial {grid.trial_id} (#{grid.rank}, {grid.architecture}) on test images, task {grid.task}")
    return fig


def study_comparison(reports: list[StudyReport], comparison: Comparison) -> Figure:
    """The metric of every finished trial, one column per study."""
    data = pd.concat([r.done.assign(study=r.name)[["study", comparison.metric]] for r in reports], ignore_index=True)
    with sns.axes_style(STYLE):
        fig = Figure(layout="constrained", figsize=(WIDTH * 0.7, 4))
        ax = fig.subplots()
        order = [r.name for r in reports]
        sns.boxplot(data=data, x="study", y=comparison.metric, order=order, ax=ax, color="0.9", showfliers=False)
        sns.stripplot(data=data, x="study", y=comparison.metric, order=order, ax=ax, alpha=0.7)
        ax.set(xlabel="study", ylabel=label(comparison.metric), title=f"{label(comparison.metric)} by study")
    return fig
