"""``python -m search``: run, resume and list studies (thin: parsing only; see ``search.commands``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from cae.cli import ArgumentParser
from cae.precision import PRECISIONS
from search import commands, export, mlflow_log
from search.options import (
    ENGINES,
    GPU_MEMORY_MODES,
    KT_TUNERS,
    SAMPLERS,
    SCHEDULERS,
    SweepOptions,
    parse_duration,
    parse_objectives,
)
from search.plan import Servers


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m search", description="Hyperparameter sweeps of convolutional autoencoders.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="start a new study")
    r.add_argument("--space", default="quick", help="a shipped space name or a path to a space YAML file")
    r.add_argument("--study", default=None, help="study name (default: <space>-<date>-<time>)")
    r.add_argument("--data", default=None, help="embedded | cifar10[:PATH] | stl10[:PATH] | folder:PATH")
    r.add_argument("--task", default=None, help="override the space's task")
    r.add_argument("--samples", type=int, default=None, help="number of trials (default: the space's)")
    r.add_argument("--max-epochs", type=int, default=None, help="epochs per trial at most (default: the space's)")
    r.add_argument("--sampler", default="tpe", help=f"Optuna sampler: {', '.join(SAMPLERS)}")
    r.add_argument("--startup-trials", type=int, default=None,
                   help="random trials before the tpe, cmaes or gp sampler's model takes over (default: Optuna's, "
                   "10 for tpe and gp, 1 for cmaes)")
    r.add_argument("--scheduler", default="asha", help=f"{', '.join(SCHEDULERS)}")
    r.add_argument("--objectives", default="val_mse",
                   help="objective metric(s) with an optional direction, e.g. val_mse, val_psnr:max or "
                        "val_mse:min,params:min")
    r.add_argument("--cpus-per-trial", type=float, default=1.0)
    r.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPU share per trial, e.g. 0.25 (0: CPU)")
    r.add_argument("--gpu-memory", default="limit", help=f"how a GPU share is enforced: {', '.join(GPU_MEMORY_MODES)}")
    r.add_argument("--concurrency", type=int, default=None, help="trials at once (default: as resources allow)")
    r.add_argument("--address", default=None, help="join a Ray cluster: auto or ray://host:port")
    r.add_argument("--root", default="results", help="results root: a folder (shared for clusters) or s3:// URI")
    r.add_argument("--shared-root", action="store_true", help="--root is a shared (e.g. NFS) path on every node")
    r.add_argument("--storage", default=None, help="Optuna storage URL (default: SQLite in the study folder)")
    r.add_argument("--engine", default="ray", help=f"{', '.join(ENGINES)}")
    r.add_argument("--kt-tuner", default="hyperband", help=f"keras-tuner algorithm: {', '.join(KT_TUNERS)}")
    r.add_argument("--max-failures", type=int, default=2, help="retries of a trial whose worker died")
    r.add_argument("--limit", type=int, default=None, help="at most this many images per split (tiny runs)")
    r.add_argument("--seed", type=int, default=0, help="training seed: initialisation, shuffling, noise")
    r.add_argument("--split-seed", type=int, default=0, help="data seed: which images go to train, val and test")
    r.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="every trial's floating-point precision (default: the space's, else float32); auto: "
                        "mixed_bfloat16 on a CPU or GPU that computes bfloat16, else float32")
    r.add_argument("--time-budget", default=None,
                   help="wall time for the whole study, e.g. 2h, 90m, 45s: no new trial once it is spent")
    r.add_argument("--time-budget-hard", action="store_true",
                   help="with --time-budget: stop the running trials too (at their next epoch)")
    r.add_argument("--max-params", type=int, default=None, help="refuse configurations above this many parameters")
    r.add_argument("--max-weights-mb", type=float, default=None,
                   help="refuse configurations whose float32 weights exceed this many MB")
    r.add_argument("--warm-start", action="append", default=[], metavar="STUDY",
                   help="tell the sampler the finished trials of an earlier study (a name under --root, or a "
                        "folder); repeatable")
    r.add_argument("--enqueue", default=None, metavar="FILE.yaml",
                   help="configurations to train first, in order (a YAML list; a partial one is completed by "
                        "the sampler)")
    mlflow_log.add_arguments(r)

    r.add_argument("--verbose", action="store_true", help="also show Ray Tune's per-trial tables")

    s = sub.add_parser("resume", help="continue an interrupted study or extend a finished one")
    s.add_argument("--study", required=True)
    s.add_argument("--root", default=None)
    s.add_argument("--samples", type=int, default=None, help="extend the study to this many trials")
    _server_options(s)
    s.add_argument("--verbose", action="store_true", help="also show Ray Tune's per-trial tables")

    c = sub.add_parser("confirm", help="re-train the best configurations with new training seeds (CIs)")
    c.add_argument("--study", required=True)
    c.add_argument("--root", default=None)
    c.add_argument("--top", type=int, default=3, help="how many of the best finished configurations")
    c.add_argument("--repeats", type=int, default=3, help="new training seeds for each")
    c.add_argument("--split-seeds", type=int, default=None,
                   help="also train each on this many further splits of the data (the variance the split adds)")
    _server_options(c)
    c.add_argument("--verbose", action="store_true", help="also show Ray Tune's per-trial tables")

    e = sub.add_parser("export", help="a study's model for use without caesweep (plain Keras, SavedModel, model card)")
    export.build_parser(e)

    ls = sub.add_parser("list", help="the studies under the results root, with their state")
    ls.add_argument("--root", default=None)
    ls.add_argument("--format", "-f", choices=commands.LIST_FORMATS, default="table",
                    help="table (to read), json or csv (for programs)")
    return p


def _server_options(parser: Any) -> None:
    """A stored study's servers are used only when named again here (search.plan.Servers)."""
    parser.add_argument("--storage", default=None,
                        help="the Optuna storage URL the study records, when it is not the study's own file")
    parser.add_argument("--address", default=None, help="the Ray cluster to join (auto, HOST:PORT, ray://HOST:PORT)")
    mlflow_log.add_arguments(parser)


def options_from_args(args) -> SweepOptions:
    objectives, directions = parse_objectives(args.objectives)
    study = args.study or f"{args.space.rsplit('/', 1)[-1].removesuffix('.yaml')}-{time.strftime('%Y%m%d-%H%M%S')}"
    return SweepOptions(
        study=study, space=args.space, data=args.data, task=args.task, samples=args.samples,
        max_epochs=args.max_epochs, sampler=args.sampler, startup_trials=args.startup_trials, scheduler=args.scheduler,
        objectives=objectives, directions=directions, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, gpu_memory=args.gpu_memory, concurrency=args.concurrency,
        address=args.address, root=args.root, storage=args.storage, engine=args.engine, kt_tuner=args.kt_tuner,
        seed=args.seed, split_seed=args.split_seed, max_failures=args.max_failures, limit=args.limit,
        precision=args.precision,
        time_budget_s=None if args.time_budget is None else parse_duration(args.time_budget),
        time_budget_hard=args.time_budget_hard, max_params=args.max_params, max_weights_mb=args.max_weights_mb,
        warm_start=tuple(args.warm_start), enqueue=args.enqueue, mlflow=mlflow_log.given(args),
        extra={"shared_root": args.shared_root},
    )


def prepare(argv: Sequence[str] | None = None, trainable: Callable[..., None] | None = None) -> Callable[[], int]:
    """Parse and check the whole command line, writing nothing; return the work itself.

    Split from :func:`main` so that everything a user can get wrong is checked first, and can be fuzzed
    without starting Ray or training. ``trainable``: what each trial runs instead of caesweep's training (a
    program that embeds this CLI, e.g. with a tabular benchmark's replay); the same one for run, resume and
    confirm of a study.
    """
    args = build_parser().parse_args(argv)
    if args.command == "run":
        import results

        opts = options_from_args(args)
        results.validate_name(opts.study)
        return commands.prepare_run(opts, trainable, verbose=args.verbose)
    if args.command in ("resume", "confirm"):
        servers = Servers(storage=args.storage, address=args.address, mlflow=mlflow_log.given(args),
                          no_mlflow=args.no_mlflow)
    if args.command == "resume":
        return commands.prepare_resume(args.study, args.root, args.samples, args.verbose, trainable, servers)
    if args.command == "confirm":
        return commands.prepare_confirm(args.study, args.root, args.top, args.repeats, args.verbose,
                                        trainable=trainable, servers=servers, split_seeds=args.split_seeds)
    if args.command == "export":
        return export.prepare(args)
    return lambda: commands.list_studies(args.root, args.format)


def main(argv: Sequence[str] | None = None) -> int:
    return prepare(argv)()
