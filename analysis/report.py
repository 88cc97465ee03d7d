"""``python -m analysis.report``: leaderboard in the terminal; report.md, report.html, leaderboard.csv and PNGs.

::

    python -m analysis.report --study NAME [--study NAME2 ...] [--root DIR] [--top K] [--metric M] [--out DIR]
                              [--no-images]

One study writes into ``<root>/<study>/report/``; several studies write one combined report (a side-by-side
comparison, then each study's sections) into ``<root>/<first>/report/compare-<first>-<second>...``. A study
that is still running or was interrupted is reported as far as it got. ``--no-images`` skips the best model's
image grid, the only part that loads TensorFlow.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import build, document, plots, render
from analysis.build import StudyReport
from analysis.document import Block
from analysis.metrics import check_metric
from cae.cli import ArgumentParser, run
from cae.errors import StudyError, UsageError
from results import DEFAULT_ROOT, Study, check_writable, load_study, study_paths, write_files

DEFAULT_TOP = 10
DEFAULT_METRIC = "val_mse"  # when study.json names no objective


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m analysis.report",
        description="Report on one or more studies: the leaderboard in the terminal, and report.md, report.html "
        "(self-contained), leaderboard.csv and PNG plots in the report folder.",
    )
    parser.add_argument("--study", action="append", required=True, help="study name (repeat to compare studies)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"results root (default {DEFAULT_ROOT})")
    parser.add_argument("--top", type=int, default=DEFAULT_TOP, help=f"leaderboard size (default {DEFAULT_TOP})")
    parser.add_argument(
        "--metric", help="rank by this trial-table metric, e.g. test_mse, test_psnr, skill (default: the objective)"
    )
    parser.add_argument("--out", type=Path, help="output folder (default: the study's report/ folder)")
    parser.add_argument("--no-images", action="store_true", help="skip the best model's image grid (no TensorFlow)")
    args = parser.parse_args(argv)
    if args.top < 1:
        raise UsageError(f"--top {args.top} must be at least 1")
    if len(set(args.study)) != len(args.study):
        raise UsageError(f"--study names a study twice ({', '.join(args.study)}); name each study once")
    return args


@dataclass(frozen=True)
class Written:
    """What :func:`write_report` wrote, and the summary to print."""

    folder: Path
    files: list[str]
    terminal: str


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    studies = [_load(name, args.root) for name in args.study]
    metric = check_metric(args.metric or studies[0].meta.get("metric") or DEFAULT_METRIC)
    folder = args.out or _default_folder(studies)
    within = _named_folder(folder, args.root) if args.out else studies[0].paths.folder
    _check_writable(folder, within)
    written = write_report(studies, metric, args.top, folder, images=not args.no_images, within=within)
    print(written.terminal, end="")
    print(f"\nreport written to {written.folder}: {', '.join(written.files)}")
    return 0


def _load(name: str, root: Path) -> Study:
    study = load_study(study_paths(name, root))
    if study.trials.empty:
        raise StudyError(f"study {name!r} has no trials yet; wait for `python -m search run` to finish one")
    return study


def _default_folder(studies: Sequence[Study]) -> Path:
    first = studies[0].paths.report_dir
    return first if len(studies) == 1 else first / ("compare-" + "-".join(s.name for s in studies))


def _named_folder(out: Path, root: Path) -> Path:
    """The folder ``--out`` lies in that the user named, below which no link is followed: a study folder of the
    root when ``--out`` lies inside one (a link in a study is not the user's), else ``--out``'s own parent
    (``--out`` itself must not be a link: it would put the report elsewhere than where the user pointed)."""
    here, base = Path(os.path.abspath(out)), Path(os.path.abspath(root))
    if base in here.parents and here.parent != base:
        return base / here.relative_to(base).parts[0]
    return here.parent


def _check_writable(folder: Path, within: Path) -> None:
    try:
        check_writable(folder, within)
    except OSError as exc:
        raise UsageError(f"cannot write the report to {folder} ({exc.strerror}); pass a writable --out") from None


def write_report(
    studies: Sequence[Study], metric: str, top: int, folder: Path, images: bool = True, within: Path | None = None
) -> Written:
    """Compute, draw and write the report of ``studies`` into ``folder``; return what was written. No link from
    ``within`` (default: ``folder`` itself) down is followed, and each file is replaced whole: a write that fails
    (a full disk) leaves the previous report as it was."""
    reports = [build.study_report(s, metric, top) for s in studies]
    several = len(reports) > 1
    pngs: dict[str, bytes] = {}
    blocks: list[Block] = []
    if several:
        comparison = build.comparison(reports)
        pngs["comparison.png"] = plots.png(plots.study_comparison(reports, comparison))
        blocks += document.comparison_blocks(comparison, "comparison.png")
    for study, report in zip(studies, reports, strict=True):
        prefix = f"{report.name}-" if several else ""
        files = {stem: plots.png(fig) for stem, fig in plots.figures(report).items()}
        note = "The image grid was skipped (--no-images)."
        if images:
            from analysis.images import best_model_grid

            grid, note = best_model_grid(study.paths, study.meta, report.leaderboard, report.trials)
            if grid is not None:
                files["image_grid"] = plots.png(plots.image_grid(grid))
        pngs.update({f"{prefix}{stem}.png": data for stem, data in files.items()})
        names = {stem: f"{prefix}{stem}.png" for stem in files}
        blocks += document.study_blocks(report, names, note, level=2 if several else 1)
    title = "caesweep report: " + ", ".join(r.name for r in reports)
    return _write(folder, title, blocks, pngs, reports, within)


def _write(
    folder: Path, title: str, blocks: list[Block], pngs: dict[str, bytes], reports: list[StudyReport],
    within: Path | None,
) -> Written:
    board = pd.concat([r.leaderboard.assign(study=r.name) for r in reports], ignore_index=True)
    board = board[["study", *(c for c in board.columns if c != "study")]]
    if len(reports) == 1:
        board = board.drop(columns="study")
    outputs: dict[str, str | bytes] = {
        "report.md": render.markdown(title, blocks),
        "report.html": render.to_html(title, blocks, pngs),
        "leaderboard.csv": board.to_csv(index=False),
        **pngs,
    }
    try:
        write_files(folder, outputs, within)
    except OSError as exc:
        raise UsageError(f"cannot write the report to {folder} ({exc.strerror}); pass a writable --out") from None
    summary = [b for b in blocks if not isinstance(b, document.Image)]
    return Written(folder, list(outputs), render.terminal(_terminal_blocks(summary)))


def _terminal_blocks(blocks: Sequence[Block]) -> list[Block]:
    """The terminal shows the comparison, each leaderboard, its seed repeats, status and findings; the rest is
    in the files."""
    keep, show = [], True
    shown = ("Study ", "Comparison", "Findings", "Leaderboard", "Seed repeats")
    for block in blocks:
        if isinstance(block, document.Heading):
            show = block.level == 1 or block.text.startswith(shown)
        if show:
            keep.append(block)
    return keep


if __name__ == "__main__":
    raise SystemExit(run(main))
