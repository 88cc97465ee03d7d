"""Training throughput: the suite's loop (:func:`cae.training.train`) against a bare ``model.fit``.

The requirement: the suite's training loop must not be slower than a bare ``model.fit`` on the same model and
arrays; suite / bare, in training images per second, must stay >= :data:`TARGET_RATIO`. Run it as::

    python -m benchmarks.train_throughput [--images 2048] [--epochs 3] [--repeats 2] [--out PATH]

How it is measured, in one process so that both sides share the machine's state:

- the same model: 32-48-64, kernel 3, latent 128 (the published baseline), built by
  :func:`cae.models.build_model` and compiled by :func:`cae.training.compile_model` right after the same seed,
  so both sides start from identical weights with the same loss, metrics and optimizer;
- the same arrays: the ``reconstruct`` task (input = target) on embedded tiles, batch 64, the val split scored
  after every epoch, in the suite's usual proportion of 15 val images to 70 train images. The suite runs
  without early stopping and without its test evaluation, which come after the loop being compared;
- the first epoch of every run is a warm-up (it traces the train step, and the bare fit's test step) and is
  not timed. Both clocks are read at the end of every epoch, after the validation pass: the bare fit's by a
  callback, the suite's by an epoch hook, which runs after the suite's own per-epoch work (its validation
  pass, history, early-stopping state, the copy of the best weights), so that work counts against the suite.
  An epoch's time runs from the end of the previous epoch to its own end;
- ``repeats`` rounds, alternating which side goes first, so that a change in machine load hits both sides.
  A side's throughput is its train images over its *median* timed epoch across all rounds: on a shared
  machine one epoch slowed by another process must not decide the result (each round's own throughput over
  all its timed epochs is kept in ``rounds`` too).

:func:`measure` returns the result as a JSON-friendly dict, for a future benchmark registry to call.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy

from cae.cli import ArgumentParser, run
from cae.config import ModelConfig, RunConfig, TrainConfig
from cae.errors import BenchmarkError, UsageError
from cae.tasks import Pair, get_task
from results import DEFAULT_ROOT, write_atomic

NAME = "train_throughput"
TARGET_RATIO = 0.95  # the bar: the suite may cost at most 5% of a bare fit's throughput
MODEL = ModelConfig(filters=(32, 48, 64), kernel_size=3, latent_dim=128)  # the published baseline
TASK = "reconstruct"  # input = target: no task work, so the comparison is the loop alone
BATCH_SIZE = 64
LR = 1e-3
VAL_PER_TRAIN = 0.15 / 0.7  # the default split's proportion of val to train images
DEFAULT_OUT = DEFAULT_ROOT / "benchmarks" / f"{NAME}.json"


def measure(images: int = 2048, epochs: int = 3, repeats: int = 2, image_size: int = 32, seed: int = 0,
            precision: str = "float32") -> dict:
    """Time a bare ``model.fit`` and the suite's :func:`~cae.training.train` side by side; return the result.

    Args:
        images: training images (embedded tiles); the val split gets ``VAL_PER_TRAIN`` times as many.
        epochs: epochs per run, >= 2: the first is a warm-up and is not timed.
        repeats: rounds of one run per side; the summary takes each side's median epoch over all rounds.
        image_size: side of the square RGB images (a power of two, at least 8 for the 3-level model).
        seed: the data subset and both models' initial weights.
        precision: both sides' (:mod:`cae.precision`; ``auto`` resolved as the suite resolves it).

    Raises:
        BenchmarkError: a budget too small to measure anything.
    """
    _check_budget(images, epochs, repeats)
    config = RunConfig(
        model=MODEL,
        train=TrainConfig(task=TASK, lr=LR, batch_size=BATCH_SIZE, epochs=epochs, patience=None, seed=seed,
                          precision=precision),
        image_size=image_size,
    )
    config.validate()
    load_average_before = _load_average()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")

    from cae.data import load_dataset  # the data layer does not import TensorFlow

    data = load_dataset("embedded", image_size=image_size, seed=seed, limit=images)

    from cae.training import prepare  # imports TensorFlow, only once every argument is known to be good

    prepared = prepare(get_task(TASK), data, seed=seed)
    val_images = min(len(prepared.val.x), max(1, round(len(prepared.train.x) * VAL_PER_TRAIN)))
    prepared = replace(prepared, val=Pair(x=prepared.val.x[:val_images], y=prepared.val.y[:val_images]))
    timed_images = len(prepared.train.x) * (epochs - 1)

    rounds = []
    params: set[int] = set()
    for index in range(repeats):
        order = ("bare", "suite") if index % 2 == 0 else ("suite", "bare")
        ends: dict[str, list[float]] = {}
        for side in order:
            ends[side], side_params = _TIMED_RUNS[side](config, prepared)
            params.add(side_params)
        rounds.append(_round(index + 1, order[0], ends, timed_images))
    if len(params) != 1:
        raise RuntimeError(f"the two sides trained different models ({sorted(params)} parameters)")

    median_epoch = {
        side: statistics.median(t for r in rounds for t in r[f"{side}_epoch_seconds"]) for side in ("bare", "suite")
    }
    bare, suite = (len(prepared.train.x) / median_epoch[side] for side in ("bare", "suite"))
    ratio = suite / bare
    return {
        "benchmark": NAME,
        "bare_images_per_second": bare,
        "suite_images_per_second": suite,
        "ratio": ratio,
        "bare_median_epoch_seconds": median_epoch["bare"],
        "suite_median_epoch_seconds": median_epoch["suite"],
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
        "rounds": rounds,
        "setup": {
            "model": MODEL.describe(),
            "params": params.pop(),
            "task": TASK,
            "image_size": image_size,
            "train_images": len(prepared.train.x),
            "val_images": val_images,
            "batch_size": BATCH_SIZE,
            "lr": LR,
            "epochs": epochs,
            "timed_epochs": epochs - 1,
            "repeats": repeats,
            "seed": seed,
            "precision": precision,
            "data": data.summary(),
        },
        "environment": _environment(started, load_average_before),
    }


def _check_budget(images: int, epochs: int, repeats: int) -> None:
    if not isinstance(images, int) or images < 1:
        raise BenchmarkError(f"images {images!r} must be a positive number of training images (e.g. 2048)")
    if not isinstance(epochs, int) or epochs < 2:
        raise BenchmarkError(f"epochs {epochs!r} must be at least 2: the first epoch is a warm-up, never timed")
    if not isinstance(repeats, int) or repeats < 1:
        raise BenchmarkError(f"repeats {repeats!r} must be a positive number of rounds (e.g. 2)")


def _time_bare(config: RunConfig, prepared: Any) -> tuple[list[float], int]:
    """A bare ``model.fit``; returns the clock at the end of every epoch and the parameter count."""
    from cae import precision
    from cae.models import build_model
    from cae.runtime import keras
    from cae.training import compile_model

    settle(keras)
    policy = precision.resolve(config.train.precision, precision.detect(tensorflow=True)).policy
    with precision.policy_scope(policy):  # as train() does
        keras.utils.set_random_seed(config.train.seed)  # as train() does, so both start from the same weights
        model = build_model(config.model, config.image_size, prepared.task.in_channels, prepared.task.out_channels)
        compile_model(model, config.train.lr, config.train.loss)
        ends: list[float] = []
        clock = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: ends.append(time.perf_counter()))
        model.fit(
            prepared.train.x,
            prepared.train.y,
            batch_size=config.train.batch_size,
            epochs=config.train.epochs,
            validation_data=(prepared.val.x, prepared.val.y),
            shuffle=True,
            callbacks=[clock],
            verbose=0,
        )
    return ends, int(model.count_params())


def _time_suite(config: RunConfig, prepared: Any) -> tuple[list[float], int]:
    """The suite's :func:`~cae.training.train`; returns the clock at the end of every epoch and the parameters."""
    from cae.runtime import keras
    from cae.training import train

    settle(keras)
    ends: list[float] = []
    result = train(config, prepared, hooks=[lambda state: ends.append(time.perf_counter())], evaluate_test=False)
    return ends, result.params


_TIMED_RUNS = {"bare": _time_bare, "suite": _time_suite}


def settle(keras: Any) -> None:
    """Start each run from the same state: no models left from the last run, no garbage waiting to be freed."""
    keras.backend.clear_session()
    gc.collect()


def _round(number: int, first: str, ends: dict[str, list[float]], timed_images: int) -> dict[str, Any]:
    out: dict[str, Any] = {"round": number, "first": first}
    for side in ("bare", "suite"):
        clock = ends[side]
        seconds = clock[-1] - clock[0]  # from the end of the warm-up epoch to the end of the last
        out[f"{side}_seconds"] = seconds
        out[f"{side}_images_per_second"] = timed_images / seconds
        out[f"{side}_epoch_seconds"] = [b - a for a, b in itertools.pairwise(clock)]
    out["ratio"] = out["suite_images_per_second"] / out["bare_images_per_second"]
    return out


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # not available on this platform
        return None


def _environment(started: str, load_average_before: list[float] | None) -> dict[str, Any]:
    from cae.runtime import keras, tf

    return {
        "started": started,
        "load_average_before": load_average_before,
        "load_average_after": _load_average(),
        "cpus": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def format_report(result: dict[str, Any]) -> str:
    """The result as a few readable lines."""
    setup, env = result["setup"], result["environment"]
    lines = [
        f"train throughput: {setup['model']} ({setup['params']:,} params), {setup['task']} "
        f"{setup['image_size']}x{setup['image_size']}, {setup['train_images']:,} train / {setup['val_images']:,} "
        f"val images, batch {setup['batch_size']}",
        f"epochs 2..{setup['epochs']} timed, {setup['repeats']} rounds, load average {env['load_average_before']} "
        f"before, {env['load_average_after']} after, {env['cpus']} CPUs",
    ]
    for r in result["rounds"]:
        lines.append(
            f"round {r['round']} ({r['first']} first): bare {r['bare_images_per_second']:,.0f} images/s, "
            f"suite {r['suite_images_per_second']:,.0f} images/s, ratio {r['ratio']:.3f}"
        )
    verdict = "met" if result["meets_target"] else "NOT met"
    lines.append(
        f"median epoch: bare {result['bare_images_per_second']:,.0f} images/s, suite "
        f"{result['suite_images_per_second']:,.0f} images/s, ratio {result['ratio']:.3f} "
        f"(target >= {result['target_ratio']}: {verdict})"
    )
    return "\n".join(lines)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m benchmarks.train_throughput",
        description="Training throughput of the suite's loop against a bare model.fit on the same model and arrays.",
    )
    p.add_argument("--images", type=int, default=2048, help="training images (default 2048)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run, >= 2; the first is not timed (default 3)")
    p.add_argument("--repeats", type=int, default=2, help="rounds of one run per side (default 2)")
    p.add_argument("--image-size", type=int, default=32, help="image side in pixels (default 32)")
    p.add_argument("--seed", type=int, default=0, help="data subset and initial weights (default 0)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the JSON result (default {DEFAULT_OUT})")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_budget(args.images, args.epochs, args.repeats)
    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; give a file name such as {args.out / (NAME + '.json')}")
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the folder of --out {args.out} ({exc.strerror})") from None
    result = measure(args.images, args.epochs, args.repeats, args.image_size, args.seed)
    print(format_report(result))
    write_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
