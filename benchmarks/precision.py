"""``precision``: mixed precision against float32, the same configurations with the same seeds: speed and quality.

The mixed policy is the one ``--precision auto`` picks here (:func:`cae.precision.resolve`); where auto keeps
float32 (no fast 16-bit arithmetic), ``mixed_bfloat16`` is measured anyway, and the result says so.

1. **Speed**: the 32-48-64 k3 z128 CAE of the issue on 32x32 embedded tiles, batch 64, reconstruction, trained by
   the suite's own :func:`cae.training.train` in float32 and in the mixed policy, :data:`SPEED_ROUNDS` rounds
   alternating which goes first; the first epoch of each run traces the step and is not timed, and each side's
   images/s is over its median timed epoch of all rounds (one epoch slowed by another process on a shared
   machine must not decide), and, as a second look, over its fastest one. Target: mixed / float32 >=
   :data:`TARGET_SPEEDUP`.
2. **Quality**: each of :data:`CONFIGS` (small CAEs chosen to flatten on all 16x16 training tiles in the budget),
   trained with training seeds 0..seeds-1 in both policies (one split, the same initial weights and shuffles per
   seed). Per configuration: the test MSE in each policy (mean and s.d. over the seeds: the seed noise), and the
   paired difference mixed - float32 with its 95 % t-interval over the seeds. The mixed policy is NOT
   DISTINGUISHABLE from float32 when that interval holds 0 (which does not show them equal: the interval's width
   says how large a difference the seeds could have missed), else the result says by how much it differs. A
   configuration trained with an SSIM loss is also judged by its test SSIM (bfloat16 keeps 8 bits of mantissa;
   the SSIM's means and variances are computed in float32, :mod:`cae.losses`, but its gradient flows through the
   16-bit layers). Whether the curves flattened (val loss improved by less than 2 % over the last third of the
   epochs) is said for both policies.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.document import Block, Bullets, Heading, Table, Text
from benchmarks import evidence, output, train_throughput
from benchmarks.definitions import RunPlan
from cae import precision
from cae.config import RunConfig, from_flat

SPEED_FILTERS, SPEED_LATENT, SPEED_SIZE, SPEED_BATCH = "32-48-64", 128, 32, 64  # the model and batch
SPEED_IMAGES = 2048  # training images per speed run: ~5 s per float32 epoch here
SPEED_EPOCHS = 3  # the first is a warm-up (traces the train step), never timed
SPEED_ROUNDS = 5  # 3 on a busy machine gave epochs of 7-21 s for one side: more rounds, a steadier median
TARGET_SPEEDUP = 1.8  # the bar for mixed / float32 images/s on these CPUs
QUICK_BELOW = 256  # a --limit below this is a smoke test: one short speed round at the plan's image size
CONFIDENCE = 0.95

# The configurations compared (label -> what each sets beyond the space's fixed settings, benchmarks/spaces/
# precision.yaml), each chosen by training it here in float32 (seed 0, 12 epochs) until its val loss improved by
# less than 2 % over the last third of its epochs (other seeds needed more: the space trains 18):
# - colorization, the tabular grid's 8-16 z64: 0.0 % (best val MSE at epoch 7);
# - reconstruction through a 16-unit bottleneck at 5e-3: 1.6 % (at 3.5e-3 2.9 %, and 2.4 % after 18 epochs or at
#   batch 16; z8: 2.0 %, then 7.7 % at 15 epochs, a late drop; 4-8 z16: 3.7 %);
# - the same trained on 1 - SSIM at 1e-3: val SSIM 0.652 -> 0.655 over the last third. At 3.5e-3 it collapsed
#   at epoch 1 to one output for every image (val SSIM 0.34, the same in float32 and bfloat16).
CONFIGS: Mapping[str, Mapping[str, Any]] = {
    "colorize-yuv 8-16 z64": {"task": "colorize-yuv", "filters": "8-16", "latent_dim": 64, "loss": "mse"},
    "reconstruct 8-16 z16": {"task": "reconstruct", "filters": "8-16", "latent_dim": 16, "loss": "mse", "lr": 5e-3},
    "reconstruct 8-16 z16, SSIM loss": {"task": "reconstruct", "filters": "8-16", "latent_dim": 16, "loss": "ssim",
                                        "lr": 1e-3},
}


def run(plan: RunPlan) -> dict[str, Any]:
    started = time.time()
    mixed, choice = mixed_policy()
    print(f"precision: float32 vs {mixed} ({choice.reason})", flush=True)
    speed = measure_speed(mixed, plan)
    runs = train_all(plan, mixed)
    table = quality(runs)
    result = {
        "mixed_policy": mixed,
        "auto_choice": {"policy": choice.policy, "reason": choice.reason},
        "speed": speed,
        "quality": output.records(table),
        "trainings": output.records(runs),
        "flattening": flat_sentence(runs["gain"], "trainings"),
        "pixel_range": "[-1, 1]",
    }
    return output.write(plan, result, blocks(plan, mixed, choice, speed, table, runs), started=started)


def mixed_policy() -> tuple[str, precision.Choice]:
    """The mixed policy to compare (auto's, or mixed_bfloat16 where auto keeps float32) and auto's choice."""
    choice = precision.resolve(precision.AUTO, precision.detect(tensorflow=True))
    return (precision.BFLOAT16 if choice.policy == precision.FLOAT32 else choice.policy), choice


# -- speed --------------------------------------------------------------------------------------------------------


def measure_speed(mixed: str, plan: RunPlan) -> dict[str, Any]:
    """Images/s of float32 and ``mixed`` on the issue's model through :func:`cae.training.train`, alternating."""
    from cae.data import load_dataset
    from cae.tasks import get_task
    from cae.training import prepare

    quick = plan.limit is not None and plan.limit < QUICK_BELOW
    size = plan.image_size if quick else SPEED_SIZE
    images = plan.limit if quick else SPEED_IMAGES
    epochs, rounds = (2, 1) if quick else (SPEED_EPOCHS, SPEED_ROUNDS)
    print(f"speed: {SPEED_FILTERS} z{SPEED_LATENT} at {size}x{size}, {images} images, {rounds} rounds...", flush=True)
    data = load_dataset("embedded", image_size=size, seed=0, limit=images)
    prepared = prepare(get_task("reconstruct"), data, seed=0)
    epoch_seconds: dict[str, list[float]] = {precision.FLOAT32: [], mixed: []}
    for index in range(rounds):
        order = (precision.FLOAT32, mixed) if index % 2 == 0 else (mixed, precision.FLOAT32)
        for policy in order:
            config = from_flat({"task": "reconstruct", "filters": SPEED_FILTERS, "latent_dim": SPEED_LATENT,
                                "kernel_size": 3, "image_size": size, "batch_size": SPEED_BATCH, "epochs": epochs,
                                "patience": None, "precision": policy})
            epoch_seconds[policy] += timed_epochs(config, prepared)
    per_second = {policy: len(prepared.train.x) / statistics.median(seconds)
                  for policy, seconds in epoch_seconds.items()}
    # Another process can only slow an epoch down: the fastest epochs are the machine's best case, a second look.
    fastest = {policy: len(prepared.train.x) / min(seconds) for policy, seconds in epoch_seconds.items()}
    ratio = per_second[mixed] / per_second[precision.FLOAT32]
    return {"model": f"{SPEED_FILTERS} k3 z{SPEED_LATENT}", "image_size": size, "train_images": len(prepared.train.x),
            "batch_size": SPEED_BATCH, "rounds": rounds, "timed_epochs_per_run": epochs - 1,
            "float32_images_per_second": per_second[precision.FLOAT32],
            "mixed_images_per_second": per_second[mixed], "ratio": ratio, "target": TARGET_SPEEDUP,
            "meets_target": ratio >= TARGET_SPEEDUP, "fastest_epoch_ratio": fastest[mixed] / fastest[precision.FLOAT32],
            "epoch_seconds": epoch_seconds}


def timed_epochs(config: RunConfig, prepared: Any) -> list[float]:
    """The seconds of each epoch after the first (which traces the step) of one training run."""
    from cae.runtime import keras
    from cae.training import train

    train_throughput.settle(keras)
    ends: list[float] = []
    train(config, prepared, hooks=[lambda state: ends.append(time.perf_counter())], evaluate_test=False)
    return [b - a for a, b in zip(ends, ends[1:], strict=False)]


# -- quality ------------------------------------------------------------------------------------------------------


def train_all(plan: RunPlan, mixed: str) -> pd.DataFrame:
    """Every configuration x seed x policy trained and tested; one row each."""
    from cae.data import load_dataset
    from cae.runtime import keras
    from cae.tasks import get_task
    from cae.training import prepare, train

    data = load_dataset(plan.data, image_size=plan.image_size, seed=0, limit=plan.limit)
    rows = []
    for label, settings in CONFIGS.items():
        for seed in range(plan.seeds):
            prepared = prepare(get_task(settings["task"]), data, seed=seed)
            # Alternate which policy trains first, so that a change in the machine's load hits both.
            order = (precision.FLOAT32, mixed) if seed % 2 == 0 else (mixed, precision.FLOAT32)
            for policy in order:
                run = from_flat({**plan.definition.space.fixed, "data": plan.data, "image_size": plan.image_size,
                                 "max_epochs": plan.budget, **settings, "seed": seed, "precision": policy})
                train_throughput.settle(keras)
                result = train(run, prepared)
                rows.append({
                    "config": label, "seed": seed, "policy": policy, "test_mse": result.test["test_mse"],
                    "test_ssim": result.test["test_ssim"], "test_mse_ci95": result.test["test_mse_ci95"],
                    "images_per_second": result.images_per_second, "best_epoch": result.best_epoch,
                    "gain": evidence.last_third_gain([r["val_loss"] for r in result.history]),
                })
                print(f"{label}, seed {seed}, {policy}: test MSE {rows[-1]['test_mse']:.5f}, "
                      f"{result.images_per_second:,.0f} images/s", flush=True)
    return pd.DataFrame(rows)


def flat_sentence(gains: pd.Series, what: str) -> str:
    """How many of ``what`` flattened: improved their val loss (what they train on) by less than 2 % over the last
    third of their epochs (:func:`benchmarks.evidence.last_third_gain`)."""
    known = gains.dropna()
    if known.empty:
        return f"flattening of the {what}: unknown (curves too short to have a last third)"
    flat = int((known < evidence.FLAT_GAIN).sum())
    return (f"flattened: {flat} of {len(known)} {what} improved their val loss by less than "
            f"{evidence.FLAT_GAIN:.0%} over their last third of epochs (median {known.median():.1%}, largest "
            f"{known.max():.1%})")


def metrics_of(config: str) -> tuple[str, ...]:
    """The test metrics a configuration is judged by: MSE, and SSIM too when it trained on an SSIM loss."""
    return ("test_mse", "test_ssim") if "ssim" in str(CONFIGS[config]["loss"]) else ("test_mse",)


def paired(float32: Sequence[float], mixed: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """mixed - float32 seed by seed: the mean difference, its t-interval over the seeds, and the seed noise."""
    a, b = np.asarray(float32, dtype=float), np.asarray(mixed, dtype=float)
    diff = b - a
    n = len(diff)
    mean = float(diff.mean())
    half = math.nan
    if n > 1:
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * diff.std(ddof=1) / math.sqrt(n))
    return {"n": n, "float32_mean": float(a.mean()), "float32_sd": float(a.std(ddof=1)) if n > 1 else math.nan,
            "mixed_mean": float(b.mean()), "mixed_sd": float(b.std(ddof=1)) if n > 1 else math.nan,
            "diff": mean, "diff_low": mean - half, "diff_high": mean + half,
            "diff_relative": mean / float(a.mean()) if a.mean() else math.nan}


def verdict(row: Mapping[str, float]) -> str:
    """NOT DISTINGUISHABLE when the interval holds 0, else by how much (relative to float32) mixed differs."""
    if math.isnan(row["diff_low"]):
        return "UNDECIDED (one seed: no interval)"
    if row["diff_low"] <= 0 <= row["diff_high"]:
        return evidence.NOT_DISTINGUISHABLE
    return f"differs: mixed {'higher' if row['diff'] > 0 else 'lower'} by {abs(row['diff_relative']):.1%}"


def quality(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration and metric: both policies over the seeds, the paired difference, a verdict."""
    rows = []
    for config, group in runs.groupby("config", sort=False):
        pivot = {metric: group.pivot(index="seed", columns="policy", values=metric)
                 for metric in (*metrics_of(str(config)), "images_per_second")}
        mixed = next(p for p in pivot["images_per_second"].columns if p != precision.FLOAT32)
        speed = pivot["images_per_second"][mixed] / pivot["images_per_second"][precision.FLOAT32]
        for metric in metrics_of(str(config)):
            values = pivot[metric].dropna()
            row: dict[str, Any] = {"config": config, "metric": metric,
                                   **paired(values[precision.FLOAT32], values[mixed])}
            row["verdict"] = verdict(row)
            row["speed_ratio"] = float(speed.median())
            rows.append(row)
    return pd.DataFrame(rows)


# -- the result ---------------------------------------------------------------------------------------------------


def _mean_sd(mean: float, sd: float) -> str:
    return f"{mean:.5f}" + ("" if math.isnan(sd) else f" ± {sd:.5f}")


def quality_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The quality table as readable columns (means ± seed s.d., the difference with its interval)."""
    return pd.DataFrame({
        "configuration": table["config"], "metric": table["metric"], "n seeds": table["n"],
        "float32": [_mean_sd(m, s) for m, s in zip(table["float32_mean"], table["float32_sd"], strict=True)],
        "mixed": [_mean_sd(m, s) for m, s in zip(table["mixed_mean"], table["mixed_sd"], strict=True)],
        "mixed - float32 (95 % CI)": [f"{d:+.5f} [{lo:+.5f}, {hi:+.5f}]" for d, lo, hi in
                                      zip(table["diff"], table["diff_low"], table["diff_high"], strict=True)],
        "relative": [f"{r:+.1%}" for r in table["diff_relative"]],
        "verdict": table["verdict"], "images/s mixed / float32": [f"{r:.2f}x" for r in table["speed_ratio"]],
    })


def blocks(plan: RunPlan, mixed: str, choice: precision.Choice, speed: Mapping[str, Any], table: pd.DataFrame,
           runs: pd.DataFrame) -> list[Block]:
    met = "met" if speed["meets_target"] else "NOT met"
    speed_frame = pd.DataFrame([{
        "model": speed["model"], "images": speed["train_images"], "size": f"{speed['image_size']} px",
        "rounds": speed["rounds"], "float32 images/s": f"{speed['float32_images_per_second']:,.0f}",
        f"{mixed} images/s": f"{speed['mixed_images_per_second']:,.0f}", "ratio": f"{speed['ratio']:.2f}x",
        "target": f">= {speed['target']}x ({met})", "fastest epochs' ratio": f"{speed['fastest_epoch_ratio']:.2f}x",
    }])
    auto = (f"auto chose {choice.policy} here ({choice.reason})" if choice.policy != precision.FLOAT32 else
            f"auto keeps float32 here ({choice.reason}); {mixed} was measured anyway")
    return [
        Text(f"float32 vs {mixed}: {auto}. Quality: {len(CONFIGS)} configurations x {plan.seeds} training seeds x 2 "
             f"policies on {plan.data} {plan.image_size}x{plan.image_size} tiles"
             f"{'' if plan.limit is None else f' ({plan.limit} per split)'}, {plan.budget} epochs each with a "
             "cosine decay, no early stopping."),
        Heading("Speed"),
        Table(speed_frame, caption="median timed epoch (each with its validation pass) over alternating rounds, the "
              "suite's own training loop; the fastest epochs' ratio: each side's fastest epoch, which another process "
              "on the machine can only slow"),
        Heading("Quality"),
        Table(quality_frame(table), caption="test scores over training seeds (mean ± s.d.: the seed noise) and the "
              "paired difference mixed - float32 with its 95 % t-interval over the seeds"),
        Bullets([flat_sentence(runs[runs["policy"] == policy]["gain"], f"{policy} trainings")
                 for policy in (precision.FLOAT32, mixed)]),
    ]
