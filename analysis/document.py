"""The report as an ordered list of blocks (headings, sentences, tables, images), independent of the format.

:mod:`analysis.render` turns the same blocks into Markdown and into a self-contained HTML page, so both
formats always say the same thing. Blocks hold raw data (DataFrames, plain strings); escaping and number
formatting happen in the renderers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis import tables
from analysis.build import Comparison, StudyReport
from analysis.metrics import fmt, fmt_ci, label
from results import PRUNED


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


# Said by every table that shows an MSE (Table.title): on [-1, 1] an error is 4x what it is on [0, 1].
PIXEL_RANGE = f"MSE on pixel values in {tables.PIXEL_RANGE}, 4x the same error on [0, 1]"


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame
    caption: str = ""
    formats: Mapping[str, str] = field(default_factory=dict)  # column -> the column whose number format it uses

    @property
    def title(self) -> str:
        """The caption, followed by the pixel range when the table shows an MSE (a column or the caption names
        one): every MSE table says its range."""
        names = [str(c).lower() for c in self.frame.columns] + [self.caption.lower()]
        if not any("mse" in name for name in names) or PIXEL_RANGE in self.caption:
            return self.caption
        return f"{self.caption} ({PIXEL_RANGE})" if self.caption else PIXEL_RANGE


@dataclass(frozen=True)
class Image:
    filename: str  # a PNG written next to the report
    caption: str


Block = Heading | Text | Bullets | Table | Image


# What the leaderboard's baseline columns mean, said under it.
BASELINES = (
    "Baselines, on the same test images: PCA MSE is PCA with as many components as the model's latent units, "
    "fitted on the training split (the best linear code of the same size; none for colorization), and skill vs "
    "PCA = 1 - test MSE / PCA MSE; a model with skip connections bypasses its bottleneck, so its PCA comparison "
    "is not compression-matched. Skill = 1 - test MSE / trivial MSE, the task's trivial baseline (for "
    "reconstruction 2x down/up-sampling, which keeps a quarter of the values, more than any latent)."
)
# The same for a leaderboard without a PCA number (colourisation: the input is not the target, so a code size
# means nothing); its empty PCA columns are left out.
TRIVIAL_BASELINE = (
    "Baseline, on the same test images: skill = 1 - test MSE / trivial MSE, the task's trivial baseline (for "
    "colorization the gray image, zero chroma with the true luminance; for reconstruction 2x down/up-sampling; "
    "for denoising the noisy input). PCA has no counterpart for colorization."
)
PCA_COLUMNS = ("pca_mse", "skill_pca", "pca_comparison")
# Left out of a leaderboard on which no trial has them (gray tasks, studies recorded before they were measured).
COLORFULNESS_COLUMNS = ("test_colorfulness", "truth_colorfulness")


def _has_pca(board: pd.DataFrame) -> bool:
    return "pca_mse" in board and bool(board["pca_mse"].notna().any())


def better(metric: str, mode: str) -> str:
    return f"{label(metric)}, {'lower' if mode == 'min' else 'higher'} is better"


def study_blocks(report: StudyReport, images: Mapping[str, str], grid_note: str, level: int = 1) -> list[Block]:
    """The sections of one study's report; ``images`` maps a figure's stem to its PNG file name."""
    metric, meta = report.metric, report.meta
    blocks: list[Block] = [Heading(f"Study {report.name}", level)]
    if tables.test_metric_note(metric):
        blocks.append(Text(f"Caution: {tables.test_metric_note(metric)}"))
    blocks += [Text(_describe(meta)), Text(_logs(report))]
    blocks += [Heading("Findings", level + 1), Bullets(report.findings)]
    ranked = (
        f"The top {len(report.leaderboard)} of {len(report.done)} finished trials, ranked by "
        f"{better(metric, report.mode)}; each row is one run with one training seed, and the top row is the best "
        f"of {len(report.done)} such runs, so its scores are likely optimistic: a fresh run of the same "
        "configuration tends to score worse (`python -m search confirm` measures by how much)."
        if len(report.done)
        else f"No trial has finished with a {label(metric)} yet."
    )
    blocks += [
        Heading("Leaderboard", level + 1),
        Text(f"{ranked} Failed and pruned trials are counted below, not ranked. "
             f"{BASELINES if _has_pca(report.leaderboard) else TRIVIAL_BASELINE}"),
        Table(leaderboard_cells(report.leaderboard)),
        *seed_blocks(report, level + 1),
        Heading("Trials by status", level + 1),
        Table(report.status),
    ]
    if not report.failures.empty:
        blocks.append(Table(report.failures, "Most common reasons for failed and pruned trials"))
    blocks += _comparison_blocks(report, level + 1)
    blocks += _statistics_blocks(report, level + 1)
    blocks.append(Heading("Plots", level + 1))
    blocks += [Image(images[stem], caption) for stem, caption in _CAPTIONS.items() if stem in images]
    blocks.append(Heading("Best model on test images", level + 1))
    if "image_grid" in images:
        blocks.append(Image(images["image_grid"], "Input | prediction | ground truth, as colour images"))
    if grid_note:
        blocks.append(Text(grid_note))
    return blocks


_CAPTIONS = {
    "learning_curves": "Learning curves (train and val) of the top trials",
    "intermediate_values": "The validation curve of every trial, pruned ones included (Optuna's intermediate values)",
    "metric_vs_hyperparameters": "The metric vs each hyperparameter (Optuna's slice plot; log axes where the space "
    "samples on a log scale)",
    "parallel_coordinates": "Parallel coordinates of the finished trials, coloured by the metric",
    "contour": "The metric over the two hyperparameters of the pivot table (Optuna's contour plot)",
    "optimization_history": "Optimization history: best so far vs trial number and vs cumulative compute",
    "importance": "Hyperparameter importance",
    "pareto": "Pareto fronts: the metric vs parameters and vs training time",
}


def _logs(report: StudyReport) -> str:
    """Where a reader finds the per-epoch curves and the HParams view, or why there are none."""
    if report.tensorboard is None:
        return ("This study has no TensorBoard logs: it was run before its trials wrote them. Its Optuna trials "
                f"are still in `python -m analysis.dashboard --study {report.name}`.")
    return (f"Every trial's curves and hyperparameters are in TensorBoard: `tensorboard --logdir "
            f"{report.tensorboard}` (HParams tab for the table and parallel coordinates); the Optuna view: "
            f"`python -m analysis.dashboard --study {report.name}`.")


def _describe(meta: Mapping[str, Any]) -> str:
    keys = ("engine", "space_name", "task", "data", "image_size", "sampler", "scheduler", "samples", "max_epochs",
            "seed", "status", "git_commit", "created_at", "updated_at")
    parts: list[str] = []
    for key in keys:
        if key == "seed":
            parts += seed_settings(meta)
        elif meta.get(key) not in (None, ""):
            parts.append(f"{key}: {meta[key]}")
    return "; ".join(parts)


def seed_settings(meta: Mapping[str, Any]) -> list[str]:
    """The study's seeds in words: the training seed, the data split's seed, and the seed repeats asked for.

    A study written before ``split_seed`` existed split its data with the training seed.
    """
    parts = []
    if meta.get("seed") is not None:
        parts.append(f"training seed: {meta['seed']}")
    if meta.get("split_seed") is not None:
        parts.append(f"split seed: {meta['split_seed']}")
    elif meta.get("seed") is not None:
        parts.append(f"split seed: {meta['seed']} (the training seed; the study predates split_seed)")
    confirm = meta.get("confirm")
    if isinstance(confirm, Mapping):
        splits = f" and {confirm['split_seeds']} further splits" if confirm.get("split_seeds") else ""
        parts.append(f"seed repeats: top {confirm.get('top')}, {confirm.get('repeats')} new training seeds"
                     f"{splits} each")
    return parts + control_settings(meta)


def control_settings(meta: Mapping[str, Any]) -> list[str]:
    """What the sweep controls did, in words: trials imported from earlier studies (told to the sampler, in none
    of this study's tables), configurations refused before training, the time budget."""
    parts = []
    warm = meta.get("warm_start")
    if isinstance(warm, Mapping) and warm.get("studies"):
        parts.append(f"warm start: {warm.get('imported', 0)} trials of {', '.join(map(str, warm['studies']))} told to "
                     "the sampler first (not trained, counted or ranked here)")
    if meta.get("refused"):
        parts.append(f"{meta['refused']} configurations refused before training (over the size cap)")
    options = meta.get("options") if isinstance(meta.get("options"), Mapping) else {}
    budget = options.get("time_budget_s") if isinstance(options, Mapping) else None
    if budget:
        ended = ", reached" if meta.get("ended_by") == "time budget" else ""
        parts.append(f"time budget: {float(budget):g} s ({float(meta.get('time_spent_s', 0)):.0f} s spent{ended})")
    return parts


def _comparison_blocks(report: StudyReport, level: int) -> list[Block]:
    metric = report.metric
    blocks: list[Block] = [
        Heading("Architecture comparison", level),
        Text(f"{better(metric, report.mode)}: mean, standard deviation and number of finished trials per value "
             "of each hyperparameter that varied (numeric ones with many values are binned), how many trials of "
             "each value were pruned (they are not in its mean), and each value against the one with the best "
             "mean: Welch's t-test with Holm's correction over the other values (p vs best, adjusted; \"no "
             "difference detected\" is not equality). The trials of one value differ in every other "
             "hyperparameter, so these compare values over the trials the search ran, not at equal settings."),
    ]
    if not report.groups:
        blocks.append(Text("No hyperparameter varied among the finished trials, so there is nothing to compare."))
    roles = {p: "scientific" for p in report.scientific} | {p: "nuisance" for p in report.nuisance}
    for param, table in report.groups.items():
        blocks.append(Table(table, f"{label(metric)} by {label(param)} ({roles.get(param, 'searched')})"))
    if report.pivot is not None and report.pivot_mean is not None and report.pivot_count is not None:
        row, column = report.pivot
        pruned = int((report.trials["status"] == PRUNED).sum())
        left_out = f"; {pruned} pruned trial{'' if pruned == 1 else 's'} not in these means" if pruned else ""
        blocks.append(Table(pivot_cells(report.pivot_mean, report.pivot_count, metric),
                            f"Mean {label(metric)} (n) by {label(row)} x {label(column)}{left_out}"))
    for param, table in report.best_nuisance.items():
        blocks.append(Table(table, f"Best trial (and its nuisance settings) for each {label(param)}"))
    return blocks


def pivot_cells(mean: pd.DataFrame, count: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Join a mean pivot and its count pivot into text cells ``"0.0123 (3)"`` (empty where n = 0)."""
    cells = mean.copy().astype(object)
    for column in mean.columns[1:]:
        cells[column] = [
            f"{fmt(metric, m)} ({n})" if n else "" for m, n in zip(mean[column], count[column], strict=True)
        ]
    return cells


# Said under the seed repeats table: what the interval includes and what the test says.
SEEDS = (
    "Each configuration re-trained with fresh training seeds on the same data split (python -m search confirm): "
    "mean ± half-width of the 95 % confidence interval of the mean (Student t with n - 1 degrees of freedom) over "
    "the n fresh runs that finished, and their sample standard deviation. The variance column says what the "
    "interval includes: the training seed's variance only when the repeats share the study's split (the same "
    "test images in every run), the split's too when they were trained on several split seeds. The selected run, the "
    "search's own run of the configuration, is shown apart (selected): it won its place on its own scores, so "
    "it is biased towards luck and is no evidence for itself. vs best: each configuration's fresh seeds against "
    "those of the configuration with the best mean, Welch's t-test with Holm's correction over the K - 1 "
    "comparisons (p vs best is the adjusted p-value); \"no difference detected\" means the test did not find one, "
    "not that the two are equal: with a few seeds a side it misses differences of a few standard deviations."
)
SEED_CELL = "over fresh seeds (95 % CI, training seeds)"  # the header of a joined seed-statistics column
TEST_IMAGES_CELL = "(95 % CI, test images)"  # the header of a score joined with its interval over test images


def seed_blocks(report: StudyReport, level: int) -> list[Block]:
    """The seed repeats section, when the study has repeats (or asked for them)."""
    if report.seeds.empty and report.repeats.empty and not report.meta.get("confirm"):
        return []
    blocks: list[Block] = [Heading("Seed repeats", level), Text(SEEDS)]
    if report.seeds.empty:
        return [*blocks, Text("No seed repeat of a ranked configuration has been recorded yet.")]
    frame = seed_cells(report.seeds, std=True).rename(columns={"rank": "search rank"})
    return [*blocks, Table(frame, "Scores over fresh training seeds")]


def leaderboard_cells(board: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard as shown: each score joined with its interval into text cells, the seed statistics
    (:func:`seed_cells`) left out when no configuration on it has an interval over fresh seeds, the PCA columns
    when no trial on it has a PCA number, the colourfulness columns when none has them, and the pixel range (the
    table's title says it); leaderboard.csv keeps every column."""
    board = board.drop(columns=[c for c in ("pixel_range",) if c in board.columns])
    board = board.drop(columns=[c for c in COLORFULNESS_COLUMNS if c in board and board[c].isna().all()])
    if not _has_pca(board):
        board = board.drop(columns=[c for c in PCA_COLUMNS if c in board.columns])
    board = _with_interval(_with_interval(board, "test_mse", "test_mse_ci95"), "skill", "skill_ci95")
    if "n_seeds" in board and (board["n_seeds"] >= 2).any():
        return seed_cells(board, std=False)
    drop = [c for c in board.columns if c in ("n_seeds", "p_vs_best", "vs_best") or c.endswith(SEED_SUFFIXES)]
    return board.drop(columns=drop)


SEED_SUFFIXES = ("_seed_mean", "_seed_std", "_seed_ci95")


def _with_interval(board: pd.DataFrame, score: str, half: str) -> pd.DataFrame:
    """``score`` and its interval over test images (``half``, a half-width) as one text column, when any trial
    has the interval; else the interval column is left out."""
    if half not in board:
        return board
    if score not in board or board[half].isna().all():
        return board.drop(columns=half)
    cells = [fmt_ci(score, m, h) or fmt(score, m) for m, h in zip(board[score], board[half], strict=True)]
    out = board.drop(columns=half)
    out[score] = cells
    return out.rename(columns={score: f"{score} {TEST_IMAGES_CELL}"})


def seed_cells(frame: pd.DataFrame, std: bool) -> pd.DataFrame:
    """Join each score's ``_seed_mean``, ``_seed_ci95`` and n_seeds into one column ``"<score> over fresh seeds
    (95 % CI, training seeds)"`` whose cells read ``"0.01230 ± 0.00041 (n=4)"`` (empty without an interval); with
    ``std`` the standard deviation stays as ``"<score> seed std"``, else it is left out."""
    out = frame.copy()
    for mean in [c for c in frame.columns if c.endswith("_seed_mean")]:
        score = mean.removesuffix("_seed_mean")
        pairs = zip(frame[mean], frame[f"{score}_seed_ci95"], frame["n_seeds"], strict=True)
        cells = [f"{fmt_ci(score, m, h)} (n={n})" if fmt_ci(score, m, h) else "" for m, h, n in pairs]
        out.insert(out.columns.get_loc(mean), f"{score} {SEED_CELL}", cells)
        out = out.drop(columns=[mean, f"{score}_seed_ci95"])
        std_column = f"{score}_seed_std"
        out = out.rename(columns={std_column: f"{score} seed std"}) if std else out.drop(columns=std_column)
    return out.drop(columns="n_seeds")


def _statistics_blocks(report: StudyReport, level: int) -> list[Block]:
    metric = report.metric
    blocks: list[Block] = [Heading("Rank correlations", level)]
    if report.correlations.empty:
        blocks.append(Text("No numeric hyperparameter varied among at least 3 finished trials."))
    else:
        family = len(report.correlations)
        blocks.append(Table(report.correlations, f"Spearman rank correlation with {label(metric)}; p_holm is "
                            f"Holm-adjusted over the {family} hyperparameter{'' if family == 1 else 's'}"))
    blocks.append(Heading("Hyperparameter importance", level))
    if report.importance.table.empty:
        blocks.append(Text(report.importance.note))
    else:
        blocks.append(Table(report.importance.table, "Share of the variation of the metric each explains"))
        if report.importance.note:
            blocks.append(Text(report.importance.note))
    blocks.append(Heading("Best trade-offs (Pareto sets)", level))
    for cost, front in report.pareto.items():
        blocks.append(Table(front, f"Pareto set of {label(metric)} vs {label(cost)}"))
    return blocks


def comparison_blocks(comparison: Comparison, figure: str | None) -> list[Block]:
    """The side-by-side section that opens a several-study report."""
    blocks: list[Block] = [Heading("Comparison of studies", 1)]
    if tables.test_metric_note(comparison.metric):
        blocks.append(Text(f"Caution: {tables.test_metric_note(comparison.metric)}"))
    blocks += [
        Text(f"Each study's best and median {better(comparison.metric, comparison.mode)}; test MSE, trivial "
             "MSE, skill, PCA MSE and skill vs PCA are those of each study's best trial, one run each: the best "
             "of its study's complete trials (N), so a study with more trials is favoured by selection alone."),
        Table(comparison.table),
    ]
    if comparison.findings:
        blocks.append(Bullets(comparison.findings))
    if figure:
        blocks.append(Image(figure, f"{label(comparison.metric)} of every finished trial, by study"))
    return blocks
