"""``python -m benchmarks list | run NAME | build-table``: the benchmark registry's command line.

::

    python -m benchmarks list
    python -m benchmarks run NAME [--data D] [--budget B] [--seeds K] [--root DIR] [--limit N] [--image-size S]
                                  [--table FILE] [--concurrency C] [--trials N] [--workers K]
                                  [--time-scale F] [--profile P] [--precision P]
    python -m benchmarks build-table [--data D] [--out FILE] [--space FILE] [--limit N] [--epochs E]
                                     [--max-configs N] [--seed S] [--split-seed S] [--repeats R]
                                     [--repeat-configs N]

Results land under ``<root>/benchmarks/NAME/`` (``result.json``, ``table.md``, plots, and the studies the
benchmark ran, which ``python -m analysis.report --root <root>/benchmarks/NAME --study ...`` reads). User
errors (an unknown benchmark, a budget too small for one trial, a missing table) are one line, exit code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import definitions, tabular
from cae.cli import ArgumentParser
from cae.errors import BenchmarkError
from results import DEFAULT_ROOT


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m benchmarks",
        description="Declared benchmarks: seed reproductions, a search-engine comparison on a tabular benchmark, "
        "and the suite's own performance.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    sub.add_parser("list", help="every registered benchmark with its data, task, metric, budget and seeds")

    run = sub.add_parser("run", help="run one benchmark; results under <root>/benchmarks/NAME/")
    run.add_argument("name", help="a benchmark name (see `python -m benchmarks list`)")
    run.add_argument("--data", help="dataset spec: embedded, cifar10, cifar10:PATH, folder:PATH (default: the "
                     "benchmark's)")
    run.add_argument("--budget", type=int, help="the benchmark's budget in its own unit (see `list`)")
    run.add_argument("--seeds", type=int, help="repeats with seeds 0..K-1 (default: the benchmark's)")
    run.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"results root (default {DEFAULT_ROOT})")
    run.add_argument("--limit", type=int, help="at most N images per split (smaller, quicker runs)")
    run.add_argument("--image-size", type=int, help="image side in pixels (default: the benchmark's)")
    run.add_argument("--table", type=Path, help="engines: the tabular benchmark CSV (default: the shipped one "
                     "for --data)")
    run.add_argument("--concurrency", type=int, help="trials at once for the study benchmarks (default: as "
                     "many as the CPUs allow)")
    run.add_argument("--trials", type=int, help="scale: trials per study (default 2000)")
    run.add_argument("--workers", type=int, help="scale, engines: trials at once (default: 1, then 4)")
    run.add_argument("--profile", help="the seed reproductions: another size, e.g. `published` (the full "
                     "published grid, for a GPU); default: the CPU profile (see `list`)")
    run.add_argument("--precision", help="seed-architectures, seed-colorization, overhead: the trainings' precision, "
                     "auto | float32 | mixed_bfloat16 | mixed_float16 (default float32)")
    run.add_argument("--time-scale", type=float, help="engines: replayed epochs sleep this many times their "
                     "recorded seconds (default: no sleep, a simulated clock orders them)")

    build = sub.add_parser("build-table", help="train every configuration of a finite grid once (tabular "
                           "benchmark); resumable")
    build.add_argument("--data", help="dataset spec (default: the space's, embedded)")
    build.add_argument("--out", type=Path, help="the table CSV (default benchmarks/data/<data>-<size>px.csv)")
    build.add_argument("--space", type=Path, default=tabular.DEFAULT_SPACE, help="the grid (a space YAML file)")
    build.add_argument("--limit", type=int, help="images per split (default: the space's)")
    build.add_argument("--epochs", type=int, help="epochs per configuration (default: the space's max_epochs)")
    build.add_argument("--max-configs", type=int, help="train at most N more configurations, then stop")
    build.add_argument("--seed", type=int, default=0, help="training seed of the grid (default 0)")
    build.add_argument("--split-seed", type=int, default=0, help="which images go to train, val and test "
                       "(default 0)")
    build.add_argument("--repeats", type=int, default=tabular.DEFAULT_REPEATS,
                       help=f"training seeds of the repeated configurations, the table's own noise (default "
                       f"{tabular.DEFAULT_REPEATS}: --seed and the next ones; 1: none)")
    build.add_argument("--repeat-configs", type=int, default=tabular.DEFAULT_REPEAT_CONFIGS,
                       help=f"how many of the grid's best configurations are repeated (default "
                       f"{tabular.DEFAULT_REPEAT_CONFIGS})")
    return parser


def prepare(argv: Sequence[str] | None = None) -> Callable[[], int]:
    """Parse and check the whole command line; return the work itself (listing, a benchmark, a table).

    Split from :func:`main` so that every user mistake is found, and can be fuzzed, before anything is
    trained or written.
    """
    args = build_parser().parse_args(argv)
    if args.command == "list":
        return lambda: _print(definitions.describe_all())
    if args.command == "build-table":
        return _prepare_table(args)
    definition = definitions.get(args.name)
    settings = definitions.RunSettings(
        root=args.root, data=args.data, budget=args.budget, seeds=args.seeds, limit=args.limit,
        image_size=args.image_size, table=args.table, concurrency=args.concurrency, trials=args.trials,
        workers=args.workers, time_scale=args.time_scale, profile=args.profile, precision=args.precision,
    )
    plan = definition.plan(settings)
    return lambda: _run(definition, plan)


def main(argv: Sequence[str] | None = None) -> int:
    return prepare(argv)()


def _print(text: str) -> int:
    print(text)
    return 0


def _run(definition: definitions.BenchmarkDefinition, plan: definitions.RunPlan) -> int:
    result = definition.runner(plan)
    print(f"\nwrote {result['folder']}: {', '.join(result['files'])}")
    return 0


def _prepare_table(args: argparse.Namespace) -> Callable[[], int]:
    if args.max_configs is not None and args.max_configs < 1:
        raise BenchmarkError(f"--max-configs {args.max_configs} must be at least 1")
    if not args.space.is_file():
        raise BenchmarkError(f"--space {args.space} does not exist; the default is {tabular.DEFAULT_SPACE}")
    plan = tabular.plan_build(args.space, args.out, args.data, args.limit, args.epochs, args.seed, args.split_seed,
                              args.repeats, args.repeat_configs)
    return lambda: _build_table(plan, args.max_configs)


def _build_table(plan: tabular.BuildPlan, max_configs: int | None) -> int:
    meta = tabular.build_table(plan, max_configs)
    print(f"{plan.out}: {meta['configs_built']} of {meta['configs']} configurations, "
          f"{meta['build_seconds'] / 60:.1f} min of training in all")
    return 0
