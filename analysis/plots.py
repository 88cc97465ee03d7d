"""Draw a report's figures from its tables (seaborn on matplotlib; no computation beyond reshaping).

Figures are :class:`matplotlib.figure.Figure` objects made without pyplot, so drawing needs no display and
leaves no global state behind; :func:`png` turns one into PNG bytes. Where Optuna's matplotlib visualizations
already draw a plot (slice, parallel coordinates, contour, intermediate values) they draw it, from the
report's in-memory Optuna study (:mod:`analysis.optuna_view`): its distributions put each hyperparameter on a
numeric axis (logarithmic where the space samples it so) or a categorical one. Those functions use pyplot and
a global style; :func:`_optuna` confines both.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import matplotlib
import numpy as np
import optuna.visualization.matplotlib as optuna_plots
import pandas as pd
import seaborn as sns
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from optuna.exceptions import ExperimentalWarning

from analysis.build import Comparison, StudyReport
from analysis.images import ImageGrid
from analysis.metrics import label

STYLE = "whitegrid"
WIDTH = 11.0  # inches; at DPI this is about 1100 px, wide enough for a browser and for print
DPI = 100
PANEL_WIDTH = 2.6  # inches per hyperparameter of the slice and parallel-coordinates plots
MIN_CONTOUR_TRIALS = 4  # a contour interpolated from fewer finished trials shows the interpolation, not data


def figures(report: StudyReport) -> dict[str, Figure]:
    """Every figure the tables of ``report`` support, by file stem."""
    out: dict[str, Figure] = {}
    if not report.curves.empty:
        out["learning_curves"] = learning_curves(report.curves)
    if not report.done.empty and report.compared:
        out["metric_vs_hyperparameters"] = slice_plot(report)
        out["parallel_coordinates"] = parallel_coordinates(report)
    if report.contour is not None and len(report.done) >= MIN_CONTOUR_TRIALS:
        out["contour"] = contour(report, report.contour)
    if any(t.intermediate_values for t in report.search.trials):
        out["intermediate_values"] = intermediate_values(report)
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


def _optuna(draw: Callable[[], Any]) -> Figure:
    """Run one of Optuna's matplotlib plots with its global style undone afterwards and its figure taken out of
    pyplot's registry (it keeps no figure alive); its experimental-feature warning is not the user's concern."""
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        axes = draw()
        figure = np.asarray(axes).ravel()[0].figure
    plt.close(figure)
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            _readable(axis)
    return figure


def _readable(axis: Axis) -> None:
    """Plain tick labels on a log axis (0.0001, 0.0003, 0.001 rather than overlapping 3x10^-4 minor labels)."""
    if axis.get_scale() == "log":
        axis.set_major_locator(LogLocator(subs=(1.0, 3.0)))
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_formatter(NullFormatter())


def _visible_colours(figure: Figure) -> Figure:
    """Optuna colours by a blue scale that ends in white: the lightest trial (a line, a dot) vanishes on the
    page. Recolour every colour-mapped collection with viridis, which has no white end (colour bars follow)."""
    for ax in figure.axes:
        for collection in ax.collections:
            if collection.get_array() is not None:
                collection.set_cmap("viridis")
    return figure


def slice_plot(report: StudyReport) -> Figure:
    """Optuna's slice plot: the metric of each finished trial against each hyperparameter, coloured by trial."""
    figure = _optuna(lambda: optuna_plots.plot_slice(report.search, params=report.compared,
                                                     target_name=label(report.metric)))
    figure.set_size_inches(max(WIDTH, PANEL_WIDTH * len(report.compared)), 4.5)
    figure.suptitle(f"{label(report.metric)} of each finished trial vs each hyperparameter (colour: trial number)")
    for ax in figure.axes[: len(report.compared)]:
        ax.set_xlabel(label(ax.get_xlabel()))
        ax.tick_params(axis="x", labelrotation=40)
    return _visible_colours(figure)


def parallel_coordinates(report: StudyReport) -> Figure:
    """Optuna's parallel coordinates: one line per finished trial through its hyperparameters, coloured by the
    metric."""
    figure = _optuna(lambda: optuna_plots.plot_parallel_coordinate(report.search, params=report.compared,
                                                                   target_name=label(report.metric)))
    figure.set_size_inches(max(WIDTH, PANEL_WIDTH * (len(report.compared) + 1)), 5)
    ax = figure.axes[0]
    ax.set_title(f"Finished trials through their hyperparameters, coloured by {label(report.metric)}", pad=18)
    ax.set_xticks(ax.get_xticks(), [label(t.get_text()) for t in ax.get_xticklabels()])
    return _visible_colours(figure)


def contour(report: StudyReport, pair: tuple[str, str]) -> Figure:
    """Optuna's contour plot of the metric over two numeric hyperparameters (the most important ones)."""
    figure = _optuna(lambda: optuna_plots.plot_contour(report.search, params=list(pair),
                                                       target_name=label(report.metric)))
    figure.set_size_inches(WIDTH * 0.7, 5)
    ax = figure.axes[0]
    ax.set_title(f"{label(report.metric)} over {label(pair[0])} and {label(pair[1])} "
                 "(interpolated between the finished trials, drawn as dots)")
    ax.set(xlabel=label(pair[0]), ylabel=label(pair[1]))
    return figure


def intermediate_values(report: StudyReport) -> Figure:
    """Optuna's intermediate values: every trial's validation curve, pruned trials included."""
    figure = _optuna(lambda: optuna_plots.plot_intermediate_values(report.search))
    figure.set_size_inches(WIDTH, 4.5)
    ax = figure.axes[0]
    ax.set(xlabel="epoch", ylabel=label(report.curve_metric),
           title=f"{label(report.curve_metric)} per epoch of every trial (pruned ones stop early)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()  # one entry per trial says nothing a reader can use
    return figure


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
