"""How fast ``python -m cae.apply`` is on a folder of photographs, and how much of its time is the model's own.

The target: the model's own time (the calls that run batches of tiles through it) is at least
:data:`TARGET_SHARE` of the run on these CPUs, so that reading, colour conversion, tiling, blending and writing
cost little beside it. Run it as::

    python -m benchmarks.apply_throughput [--images 100] [--width 512] [--height 384] [--task colorize-yuv]
                                          [--batch-size 128] [--json PATH]

What is measured: ``images`` JPEG photographs of ``width`` x ``height`` (crops of the colour photographs that ship
with scikit-image, resized, saved at quality 90 in a temporary folder), run through :func:`cae.apply.process` by
a 32-48-64, kernel 3, latent 128 CAE at 32 px (the published baseline; untrained, since its weights do not change
its cost) exactly as the command runs them, outputs written. The model is traced once on a full batch before the
clock starts (as a long folder amortises it). The model's time is the wall time inside its calls; the rest of
the run is everything else. A 512x384 photograph is 33 x 25 = 825 tiles of 32 px.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cae.cli import ArgumentParser, run
from cae.errors import UsageError

TARGET_SHARE = 0.80
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


def photographs(folder: Path, count: int, width: int, height: int, seed: int = 0) -> list[Path]:
    """``count`` JPEGs of ``width`` x ``height``: random crops of scikit-image's colour photographs, resized."""
    from skimage import data

    rng = np.random.default_rng(seed)
    sources = [getattr(data, name)() for name in PHOTOS]
    files = []
    for i in range(count):
        image = sources[i % len(sources)]
        h, w = image.shape[:2]
        crop_h = int(rng.integers(h // 2, h + 1))
        crop_w = min(w, int(crop_h * width / height))
        top, left = int(rng.integers(0, h - crop_h + 1)), int(rng.integers(0, w - crop_w + 1))
        crop = Image.fromarray(image[top : top + crop_h, left : left + crop_w]).resize((width, height))
        files.append(folder / f"photo_{i:03d}.jpg")
        crop.save(files[-1], quality=90)
    return files


def measure(images: int, width: int, height: int, task_name: str, batch: int) -> dict[str, Any]:
    """Run the benchmark; the result as a JSON-friendly dict."""
    from cae import apply
    from cae.config import ModelConfig
    from cae.models import build_model
    from cae.runtime import keras, tf
    from cae.tasks import get_task

    task = get_task(task_name)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "in").mkdir()
        files = photographs(root / "in", images, width, height)
        keras.utils.set_random_seed(0)
        network = build_model(ModelConfig(filters=(32, 48, 64), kernel_size=3, latent_dim=128), 32,
                              task.in_channels, task.out_channels)
        model = apply.Model(network, task, 32, "benchmark")
        forward = apply.compiled(network)
        forward(np.zeros((batch, 32, 32, task.in_channels), np.float32))  # the trace, before the clock
        inside = {"seconds": 0.0, "calls": 0, "tiles": 0}

        def timed(x: np.ndarray) -> np.ndarray:
            started = time.perf_counter()
            out = forward(x)
            inside["seconds"] += time.perf_counter() - started
            inside["calls"] += 1
            inside["tiles"] += len(x)
            return out

        done = apply.process(model, files, root / "in", root / "out", batch=batch, call=timed)
    share = inside["seconds"] / done.seconds
    return {
        "images": done.written, "size": f"{width}x{height}", "task": task.name, "batch": batch,
        "tiles": inside["tiles"], "model_calls": inside["calls"], "seconds": done.seconds,
        "images_per_second": done.written / done.seconds, "tiles_per_second": inside["tiles"] / inside["seconds"],
        "model_seconds": inside["seconds"], "model_share": share, "outside_share": 1 - share,
        "target_share": TARGET_SHARE, "meets_target": share >= TARGET_SHARE,
        "tensorflow": tf.__version__, "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
    }


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m benchmarks.apply_throughput",
                       description="cae.apply on a folder of photographs: images/s and the model's share of the run")
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=384)
    p.add_argument("--task", default="colorize-yuv")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if min(args.images, args.width, args.height, args.batch_size) < 1:
        raise UsageError("--images, --width, --height and --batch-size must be positive")
    result = measure(args.images, args.width, args.height, args.task, args.batch_size)
    print(f"{result['images']} photos of {result['size']} ({result['task']}, {result['tiles']:,} tiles of 32 px in "
          f"{result['model_calls']} batches of up to {result['batch']}): {result['seconds']:.1f} s, "
          f"{result['images_per_second']:.2f} images/s, {result['tiles_per_second']:,.0f} tiles/s in the model")
    print(f"the model's own time: {result['model_share']:.1%} of the run (outside it: {result['outside_share']:.1%}; "
          f"target >= {TARGET_SHARE:.0%}: {'met' if result['meets_target'] else 'NOT met'})")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
