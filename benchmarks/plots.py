"""Draw the benchmarks' figures from their computed tables (no computation here beyond picking columns).

Figures are made without pyplot, like :mod:`analysis.plots`; :func:`analysis.plots.png` turns them into bytes.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

WIDTH, HEIGHT = 9.0, 5.0
MARKERS = {3: "o", 5: "s"}  # kernel size


def tradeoff_figure(table: pd.DataFrame, filters: pd.DataFrame, front: pd.DataFrame) -> Figure:
    """seed-architectures: test MSE vs seconds per epoch per architecture (training seed 0), each filter list's
    best configuration as its mean over training seeds with a bar of one s.d., their Pareto front as a line."""
    fig = Figure(layout="constrained", figsize=(WIDTH, HEIGHT))
    ax = fig.subplots()
    colours = {f: f"C{i}" for i, f in enumerate(sorted(table["filters"].unique(), key=_size))}
    for row in table.itertuples():
        ax.scatter(row.seconds_per_epoch, row.test_mse, color=colours[row.filters], alpha=0.45,
                   marker=MARKERS.get(int(row.kernel_size), "^"), s=20 + row.latent_dim / 4)
    for row in filters.itertuples():
        ax.errorbar(row.seconds_per_epoch, row.test_mse_mean, yerr=0 if pd.isna(row.test_mse_sd) else row.test_mse_sd,
                    color=colours.get(row.filters, "k"), marker="D", ms=7, mec="k", capsize=3, zorder=3)
    ax.plot(front["seconds_per_epoch"], front["test_mse_mean"], color="0.4", lw=1, zorder=0)
    for filters, colour in colours.items():
        ax.scatter([], [], color=colour, label=filters)
    for kernel in sorted(table["kernel_size"].astype(int).unique()):  # the kernels this grid has
        ax.scatter([], [], color="0.5", marker=MARKERS.get(kernel, "^"), label=f"kernel {kernel}")
    ax.scatter([], [], color="0.5", marker="D", label="best of a filter list: mean over seeds ± s.d.")
    ax.set(xscale="log", xlabel="seconds per epoch (log)", ylabel="test MSE",
           title="Architectures (marker size: latent size); the line joins the filter lists' Pareto front")
    ax.legend(fontsize="small")
    return fig


def _size(filters: str) -> int:
    return sum(int(f) for f in str(filters).split("-"))


def best_so_far_figure(
    summary: pd.DataFrame, best_known: float, target: float, ylim: tuple[float, float] | None = None,
    target_label: str = "within 5%", title: str = "Best-so-far val MSE: median over seeds, band = 25th-75th percentile",
) -> Figure:
    """engines: median best-so-far val MSE vs epochs spent per method, the band from the 25th to 75th percentile."""
    fig = Figure(layout="constrained", figsize=(WIDTH, HEIGHT))
    ax = fig.subplots()
    for index, (method, rows) in enumerate(summary.groupby("method", sort=False)):
        colour = f"C{index}"
        ax.plot(rows["spent"], rows["median"], color=colour, label=method, drawstyle="steps-post")
        ax.fill_between(rows["spent"], rows["q25"], rows["q75"], color=colour, alpha=0.15, step="post")
    ax.axhline(best_known, color="k", lw=0.8, ls=":", label=f"best in the table ({best_known:.4g})")
    ax.axhline(target, color="k", lw=0.8, ls="--", label=f"{target_label} ({target:.4g})")
    ax.set(xlabel="compute spent (epochs trained)", ylabel="best val MSE so far", ylim=ylim, title=title)
    ax.legend(fontsize="small")
    return fig
