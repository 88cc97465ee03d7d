"""``python -m cae.train``: train one model (no Ray), print a summary, optionally write JSON and the model.

Example::

    python -m cae.train --task colorize-yuv --data embedded --epochs 3 --filters 32,48,64 \\
        --kernel-size 3 --latent-dim 128 --lr 1e-3 --loss mse --json out.json

Everything is validated before TensorFlow is imported, so a mistake costs a fraction of a second and
writes nothing.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cae import precision
from cae.cli import ArgumentParser, run
from cae.config import LOSSES, MONITORS, UPSAMPLE_MODES, RunConfig, from_flat
from cae.errors import UsageError
from cae.tasks import TASKS, TRIVIAL_NAMES, get_task


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m cae.train", description="Train one convolutional autoencoder.")
    p.add_argument("--task", default="reconstruct", help=f"one of: {', '.join(TASKS)}")
    p.add_argument("--data", default="embedded", help="embedded | cifar10 | cifar10:PATH | folder:PATH")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--limit", type=int, default=None, help="at most this many images per split")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--filters", default="32-48-64", help="filters per level, e.g. 32,48,64 or 32-48-64")
    p.add_argument("--convs-per-level", type=int, default=1)
    p.add_argument("--kernel-size", type=int, default=3)
    p.add_argument("--latent-dim", type=int, default=128)
    p.add_argument("--activation", default="relu")
    p.add_argument("--batch-norm", action="store_true")
    p.add_argument("--skip", action="store_true", help="U-Net-like skip connections")
    p.add_argument("--upsample", default="upsampling", choices=UPSAMPLE_MODES)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--loss", default="mse", help=f"one of: {', '.join(LOSSES)}")
    p.add_argument("--patience", type=int, default=5, help="early-stopping patience (epochs)")
    p.add_argument(
        "--monitor", default="val_mse", choices=MONITORS,
        help="validation metric that early stopping watches and whose best epoch is kept (default val_mse, RGB)",
    )
    p.add_argument("--noise", type=float, default=0.1, help="noise std for the denoise task")
    p.add_argument("--seed", type=int, default=0, help="data split, weights, shuffling, noise")
    p.add_argument(
        "--precision", default=precision.FLOAT32,
        help=f"one of: {', '.join(precision.PRECISIONS)} (default float32; auto: mixed_bfloat16 on a CPU with "
        "AMX or AVX-512 BF16, by compute capability on a GPU, else float32; mixed_float16 needs a GPU)",
    )
    p.add_argument("--json", type=Path, default=None, help="write the result (with history) here")
    p.add_argument("--save", type=Path, default=None, help="save the model (.keras; load with cae.models.load_model)")
    p.add_argument("--verbose", action="store_true", help="Keras progress bars")
    return p


def config_from_args(args: Any) -> RunConfig:
    get_task(args.task)
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit} must be a positive number of images")
    return from_flat(
        {
            "task": args.task, "data": args.data, "image_size": args.image_size, "epochs": args.epochs,
            "filters": args.filters, "convs_per_level": args.convs_per_level, "kernel_size": args.kernel_size,
            "latent_dim": args.latent_dim, "activation": args.activation, "batch_norm": args.batch_norm,
            "skip": args.skip, "upsample": args.upsample, "lr": args.lr, "batch_size": args.batch_size,
            "loss": args.loss, "patience": args.patience, "monitor": args.monitor, "noise": args.noise,
            "seed": args.seed, "precision": args.precision,
        }
    )


def _check_output(path: Path | None, suffix: str | None = None) -> None:
    if path is None:
        return
    if suffix and path.suffix != suffix:
        raise UsageError(f"{path} must end with {suffix}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write {path}: folder {parent} does not exist or is not writable")


def format_summary(result: dict[str, Any], data_summary: str) -> str:
    """The run in a few aligned lines: data, model, cost, the kept epoch's val scores, test scores, baselines."""
    c = result["config"]
    trivial = TRIVIAL_NAMES[get_task(c["task"]).kind]
    lines = [
        f"data     {data_summary}",
        f"task     {c['task']}   model {c['filters']} k{c['kernel_size']} z{c['latent_dim']}"
        f"{' skip' if c['skip'] else ''}   params {result['params']:,}",
        f"training {result['epochs']} epochs (kept epoch {result['best_epoch']}, best {c['monitor']}) in "
        f"{result['train_seconds']:.1f} s, {result['images_per_second']:.0f} images/s",
        f"         in {result['precision']} ({result['precision_reason']})",
        f"val      MSE {result['val_mse']:.5f}  PSNR {result['val_psnr']:.2f} dB  SSIM {result['val_ssim']:.4f}"
        "   (kept epoch)",
        f"test     MSE {result['test_mse']:.5f} +/- {result['test_mse_ci95']:.5f}  PSNR {result['test_psnr']:.2f} dB  "
        f"SSIM {result['test_ssim']:.4f}   (native MSE {result['native_mse']:.5f})",
        f"trivial  MSE {result['trivial_mse']:.5f}  PSNR {result['trivial_psnr']:.2f} dB  "
        f"SSIM {result['trivial_ssim']:.4f}   skill {result['skill']:+.3f} +/- {result['skill_ci95']:.3f}"
        f"   ({trivial})",
        "         (+/-: 95 % interval over which images are in the test split, a bootstrap of its units)",
    ]
    if math.isnan(result["pca_mse"]):
        lines.append("PCA      none for colorization (the input is not the target)")
    else:
        matched = "" if result["pca_matched"] else "   not compression-matched: skip connections bypass the bottleneck"
        lines.append(
            f"PCA      MSE {result['pca_mse']:.5f}  PSNR {result['pca_psnr']:.2f} dB  SSIM {result['pca_ssim']:.4f}"
            f"   skill_pca {result['skill_pca']:+.3f}   (k = {result['pca_k']:.0f} components){matched}"
        )
    return "\n".join(lines)


def _strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float as None, so the file is standard JSON (``null``), which
    strict parsers (JavaScript, jq) read; NaN marks a score that does not exist (colorization's PCA)."""
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def prepare(argv: Sequence[str] | None = None) -> Callable[[], int]:
    """Parse and check the whole command line; return the run itself (data, training, outputs).

    Split from :func:`main` so that everything a user can get wrong is checked, and can be fuzzed, without
    reading data or importing TensorFlow.
    """
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    # Refuses mixed_float16 without a GPU here, before any data is read (auto's final choice waits for TensorFlow).
    precision.resolve(config.train.precision, precision.detect())
    _check_output(args.json)
    _check_output(args.save, ".keras")
    return lambda: _train(args, config)


def main(argv: Sequence[str] | None = None) -> int:
    return prepare(argv)()


def _train(args: Any, config: RunConfig) -> int:
    from cae.data import load_dataset

    data = load_dataset(args.data, image_size=args.image_size, seed=args.seed, limit=args.limit)

    from cae.training import train  # imports TensorFlow: only after every input is known to be good

    result = train(config, data, verbose=1 if args.verbose else 0)
    out = result.to_dict()
    print(format_summary(out, data.summary()))
    if args.json is not None:
        args.json.write_text(json.dumps(_strict_json(out), indent=2, default=float, allow_nan=False))
    if args.save is not None and result.model is not None:
        result.model.save(args.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
