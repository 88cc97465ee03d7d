"""``python -m cae.apply``: run an exported model (or a study's kept ``.keras``) on your own photographs.

::

    python -m cae.apply --model DIR|FILE.keras --input FILE|DIR --output DIR [--task T] [--compare]

Each readable JPEG/PNG under ``--input`` (a folder is searched recursively) is written to ``--output`` under
the same relative path and name, in the same format, at the same size. The folder loader's defences apply
(:func:`cae.datasets.folder.open_image`: two decoders, images over 64 megapixels refused); a file that cannot be
read is skipped and counted, never an error.

Why tiles: a CAE of caesweep has a dense bottleneck, so it only takes images of the size it was trained on
(``image_size``, e.g. 32 px). Shrinking a photograph to that size would throw away nearly all its pixels, so the
photograph is cut into tiles of that size overlapping by half (reflected at the borders); every tile is run
through the model, and the outputs are blended with a squared-sine window whose weights sum to one wherever
tiles overlap, so no seam shows and every pixel is the weighted mean of the four tiles that cover it. Tiles of
all images go through the model in batches of ``--batch-size``, across image boundaries.

Per task: a colouriser gets the photograph's luminance (a colour photograph is made gray first) and predicts
the chroma; the output keeps the input's luminance exactly (BT.601 Y, to 8-bit rounding: the predicted chroma
is scaled down where it would leave the RGB gamut, never the luminance changed). A denoiser and a reconstructor
get the photograph and return theirs; ``reconstruct-gray`` writes a gray image. ``--compare`` also writes,
beside each output, ``<name>.compare.png``: input | output (| original, when a colouriser was given a colour
photograph).

Bad input is one line and exit code 2, with nothing written: a model of another task than ``--task``, a model
whose task cannot be told from its shapes without ``--task``, a missing input, an output folder inside the
input folder (or an output that would replace an input).
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cae import colors
from cae.card import CARD_FILE, load_keras_model, read_card
from cae.cli import ArgumentParser, run
from cae.datasets.folder import Unusable, list_files, open_image
from cae.errors import DataError, UsageError
from cae.tasks import TASKS, Task, get_task

BATCH = 128  # tiles per model call: measured fastest of 64-512 for a 32-48-64 CAE at 32 px on these 2 cores
JPEG_QUALITY = 95  # outputs of JPEG inputs: high enough that the format adds no visible error of its own
COMPARE_SUFFIX = ".compare.png"
COMPARE_HEIGHT = 768  # a sheet's panels are shrunk to at most this height (a sheet is for looking, not pixels)
# A photograph counts as colour when its channels differ by more than this on average (0-255): a gray picture
# saved as an RGB JPEG differs by JPEG's rounding only (<= ~1).
COLOUR_THRESHOLD = 2.0
# Tasks told apart by a model's (input, output) channels alone; the others need --task.
_BY_CHANNELS = {(1, 1): "reconstruct-gray", (1, 3): "colorize-rgb"}


@dataclass(frozen=True)
class Model:
    """A loaded model with what applying it needs."""

    keras_model: Any
    task: Task
    size: int  # the side of the square images it takes
    source: str  # where it came from, for messages


@dataclass
class _Job:
    """One photograph on its way through the model."""

    relative: Path  # under the input folder (the file name for a single file)
    kind: str  # "JPEG" or "PNG"
    rgb: np.ndarray  # float32 (H, W, 3) in [-1, 1]
    x: np.ndarray  # the model's input, the whole photograph (H, W, C)
    tiles: np.ndarray  # (T, S, S, C)
    grid: tuple[int, int]  # tiles per column and per row
    predictions: list[np.ndarray] = field(default_factory=list)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m cae.apply",
        description="Run an exported caesweep model (or a study's kept .keras) on your own JPEG/PNG images, at "
        "any size, in overlapping tiles; outputs keep the inputs' names, sizes and formats.",
    )
    p.add_argument("--model", required=True, type=Path, help="a folder from `python -m search export`, or a .keras")
    p.add_argument("--input", required=True, type=Path, help="an image, or a folder of images (searched recursively)")
    p.add_argument("--output", required=True, type=Path, help="the folder the outputs go to (created if needed)")
    p.add_argument("--task", default=None, help=f"what the model does ({', '.join(TASKS)}); default: its card's, "
                   "or what its shapes say; a model of another task is refused")
    p.add_argument("--compare", action="store_true", help="also write <name>.compare.png: input | output | original")
    p.add_argument("--batch-size", type=int, default=BATCH, help=f"tiles per model call (default {BATCH})")
    return p


def prepare(argv: Sequence[str] | None = None) -> Callable[[], int]:
    """Check the whole command line, the paths and the model, writing nothing; return the run itself."""
    args = build_parser().parse_args(argv)
    if args.task is not None:
        get_task(args.task)
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    inputs, root = _inputs(args.input)
    output = args.output.expanduser()
    _check_output(output, args.input.expanduser(), root, inputs)
    model = load(args.model.expanduser(), args.task)
    return lambda: _run(model, inputs, root, output, args.compare, args.batch_size)


def main(argv: Sequence[str] | None = None) -> int:
    return prepare(argv)()


# --- checks -------------------------------------------------------------------------------------------------


def _inputs(given: Path) -> tuple[list[Path], Path]:
    """The files to process and the folder their relative paths are taken from."""
    path = given.expanduser()
    if path.is_file():
        return [path], path.parent
    if not path.is_dir():
        raise UsageError(f"--input {path} does not exist; pass an image or a folder of images")
    try:
        return list_files(path), path
    except DataError as exc:
        raise UsageError(f"--input: {exc}") from None


def _check_output(output: Path, given: Path, root: Path, inputs: list[Path]) -> None:
    resolved = output.resolve()
    if given.is_dir() and resolved.is_relative_to(root.resolve()):
        raise UsageError(
            f"--output {output} is inside the input folder {given}; outputs would mix with (and be read as) "
            "inputs: choose a folder outside it"
        )
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} is a file; pass a folder")
    for file in inputs:
        target = (resolved / file.relative_to(root)).resolve()
        if target == file.resolve():
            raise UsageError(f"--output {output} would replace the input {file}; choose another folder")


def load(path: Path, task_name: str | None) -> Model:
    """The model at ``path`` (an exported folder or a ``.keras`` file) and its task, checked against
    ``task_name`` when one is asked for.

    Raises:
        UsageError: no model there, or one of another task than asked, or one whose task is ambiguous.
    """
    if path.is_dir():
        card = read_card(path)
        task, keras_model, source = card.task, load_keras_model(card.model_file), f"{path} ({CARD_FILE})"
        if task_name is not None and task_name != task.name:
            raise UsageError(f"the model in {path} does {task.name}, not --task {task_name}; drop --task or pass "
                             "a model trained for it")
    elif path.is_file():
        keras_model, source = load_keras_model(path), str(path)
        task = _task_of(keras_model, path, task_name)
    else:
        raise UsageError(f"--model {path} does not exist; pass a folder from `python -m search export` or a .keras")
    size = _check_shapes(keras_model, task, source)
    return Model(keras_model, task, size, source)


def _channels(keras_model: Any) -> tuple[int, int]:
    return int(keras_model.input_shape[-1]), int(keras_model.output_shape[-1])


def _task_of(keras_model: Any, path: Path, task_name: str | None) -> Task:
    """A bare model's task: the one asked for if its shapes fit it, else the only one its shapes fit."""
    channels = _channels(keras_model)
    fits = [t.name for t in TASKS.values() if (t.in_channels, t.out_channels) == channels]
    if task_name is not None:
        task = get_task(task_name)
        if (task.in_channels, task.out_channels) != channels:
            raise UsageError(
                f"the model {path} maps {channels[0]} channels to {channels[1]}, so it does not do {task_name} "
                f"({task.in_channels} to {task.out_channels}); it does {' or '.join(fits) or 'none of the tasks'}"
            )
        return task
    if channels in _BY_CHANNELS:
        return get_task(_BY_CHANNELS[channels])
    raise UsageError(
        f"the model {path} maps {channels[0]} channels to {channels[1]}, which {' and '.join(fits) or 'no task'} "
        "do: pass --task (an exported folder's card says it)"
    )


def _check_shapes(keras_model: Any, task: Task, source: str) -> int:
    shape = tuple(keras_model.input_shape)
    if len(shape) != 4 or shape[1] != shape[2] or not shape[1] or _channels(keras_model) != (
        task.in_channels, task.out_channels
    ):
        raise UsageError(f"the model in {source} takes {shape} and gives {keras_model.output_shape}, not square "
                         f"{task.name} images; it is not a caesweep CAE")
    return int(shape[1])


# --- tiles ----------------------------------------------------------------------------------------------------


def window(size: int) -> np.ndarray:
    """The blending weights of a tile, ``(size, size)``: a squared sine per axis, so that tiles overlapping by half
    sum to exactly one (sin^2 + cos^2) wherever they cover a pixel."""
    ramp = np.sin(np.pi * (np.arange(size) + 0.5) / size) ** 2
    return np.outer(ramp, ramp).astype(np.float32)


def tile(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """An image ``(H, W, C)`` as tiles ``(T, size, size, C)`` every ``size / 2`` pixels over the image reflected by
    ``size / 2`` on each side (and up to a whole step more), so that every pixel is inside two tiles per axis;
    and the grid (tiles per column, per row)."""
    half = size // 2
    h, w, _ = image.shape
    rows, cols = math.ceil((h + size) / half) - 1, math.ceil((w + size) / half) - 1
    padded = np.pad(image, ((half, (rows + 1) * half - h - half), (half, (cols + 1) * half - w - half), (0, 0)),
                    mode="symmetric")
    views = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(0, 1))[::half, ::half]
    return np.ascontiguousarray(views.transpose(0, 1, 3, 4, 2)).reshape(-1, size, size, image.shape[-1]), (rows, cols)


def blend(tiles: np.ndarray, grid: tuple[int, int], height: int, width: int) -> np.ndarray:
    """The inverse of :func:`tile`: outputs ``(T, size, size, C)`` weighted by :func:`window` and summed where they
    overlap, cropped back to ``(height, width, C)``."""
    rows, cols = grid
    size, channels = tiles.shape[1], tiles.shape[-1]
    half = size // 2
    weighted = (tiles * window(size)[None, :, :, None]).reshape(rows, cols, 2, half, 2, half, channels)
    blocks = np.zeros((rows + 1, cols + 1, half, half, channels), dtype=np.float32)
    for a in (0, 1):  # each tile's four quarters land on four neighbouring blocks
        for b in (0, 1):
            blocks[a : a + rows, b : b + cols] += weighted[:, :, a, :, b, :]
    whole = blocks.transpose(0, 2, 1, 3, 4).reshape((rows + 1) * half, (cols + 1) * half, channels)
    return whole[half : half + height, half : half + width]


# --- the run ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """What a run did: images written, files skipped (reason -> count), wall seconds."""

    written: int
    skipped: Counter[str]
    seconds: float


def process(
    model: Model, inputs: Sequence[Path], root: Path, output: Path, *, compare: bool = False, batch: int = BATCH,
    call: Callable[[np.ndarray], np.ndarray] | None = None, progress: Any = None,
) -> Summary:
    """Run ``model`` on every readable image of ``inputs`` (relative paths taken from ``root``), writing the outputs
    (and with ``compare`` the sheets) under ``output``. ``call`` runs the model on a batch of tiles (default: the
    model, traced once); ``progress`` is updated once per file."""
    started = time.perf_counter()
    skipped: Counter[str] = Counter()
    written = 0
    call = call or compiled(model.keras_model)

    def jobs() -> Iterator[_Job]:
        for file in inputs:
            job = _read(file, root, model, skipped)
            if job is None and progress is not None:
                progress.update(1)
            if job is not None:
                yield job

    for job in predicted(jobs(), call, batch):
        _write(job, model, output, compare)
        written += 1
        if progress is not None:
            progress.update(1)
    return Summary(written, skipped, time.perf_counter() - started)


def _run(model: Model, inputs: list[Path], root: Path, output: Path, compare: bool, batch: int) -> int:
    from tqdm import tqdm

    with tqdm(total=len(inputs), unit="image", file=sys.stderr, disable=None if len(inputs) > 1 else True) as bar:
        done = process(model, inputs, root, output, compare=compare, batch=batch, progress=bar)
    note = ""
    if done.skipped:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(done.skipped.items()))
        note = f"; skipped {done.skipped.total()} of {len(inputs)} files ({reasons})"
    print(f"wrote {done.written} {model.task.name} output{'s' if done.written != 1 else ''} to {output}{note} "
          f"({done.written / done.seconds:.2f} images/s)")
    return 0


def compiled(keras_model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The model as one traced function (batches of one size run without Python per layer)."""
    from cae.runtime import tf

    @tf.function(reduce_retracing=True, autograph=False)
    def forward(x: Any) -> Any:
        return keras_model(x, training=False)

    return lambda x: np.asarray(forward(x), dtype=np.float32)


def _read(file: Path, root: Path, model: Model, skipped: Counter[str]) -> _Job | None:
    try:
        image, kind = open_image(file)
    except Unusable as reason:
        skipped[str(reason)] += 1
        return None
    rgb = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    x = model.task.make_pair(rgb[None]).x[0]  # the task's input: the photograph, or its luminance
    tiles, grid = tile(x, model.size)
    return _Job(file.relative_to(root), kind, rgb, x, tiles, grid)


def predicted(jobs: Iterable[_Job], call: Callable[[np.ndarray], np.ndarray], batch: int) -> Iterator[_Job]:
    """Each job with its tiles' predictions, in order: tiles go through ``call`` in batches of ``batch`` across
    jobs (only the very last batch is smaller), and a job is given back once all its tiles are predicted."""
    waiting: deque[_Job] = deque()  # jobs not given back yet, in order
    queued: deque[np.ndarray] = deque()  # tiles not predicted yet, in order
    outputs: deque[np.ndarray] = deque()  # predictions not handed to their job yet, in order
    for job in jobs:
        waiting.append(job)
        queued.append(job.tiles)
        while sum(len(q) for q in queued) >= batch:
            outputs.append(call(_take(queued, batch)))
            yield from _finished(waiting, outputs)
    while queued:
        outputs.append(call(_take(queued, batch)))
        yield from _finished(waiting, outputs)


def _take(chunks: deque[np.ndarray], n: int) -> np.ndarray:
    """The first ``n`` rows of the queued arrays (fewer when fewer are queued), removed from the queue."""
    parts, need = [], n
    while chunks and need:
        head = chunks.popleft()
        parts.append(head[:need])
        if len(head) > need:
            chunks.appendleft(head[need:])
        need -= len(parts[-1])
    return np.concatenate(parts)


def _finished(waiting: deque[_Job], outputs: deque[np.ndarray]) -> Iterator[_Job]:
    """Hand predictions to the waiting jobs in order; give back each job that has all of its tiles'."""
    while waiting and outputs:
        job = waiting[0]
        need = len(job.tiles) - sum(len(p) for p in job.predictions)
        head = outputs.popleft()
        job.predictions.append(head[:need])
        if len(head) > need:
            outputs.appendleft(head[need:])
        if sum(len(p) for p in job.predictions) == len(job.tiles):
            yield waiting.popleft()


def render(job: _Job, task: Task) -> np.ndarray:
    """The output image of a job whose tiles are all predicted: ``uint8`` ``(H, W, 3)`` (``(H, W)`` for gray)."""
    h, w, _ = job.rgb.shape
    native = blend(np.concatenate(job.predictions), job.grid, h, w)
    image = task.to_reference(job.x[None], native[None])[0]
    if task.kind == "colorize":
        image = keep_luminance(image, colors.rgb_to_gray(job.rgb))
    pixels = np.clip(np.rint((image + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels


def keep_luminance(rgb: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """RGB in [-1, 1] with its BT.601 luminance replaced by ``gray`` (2Y - 1) and its chroma kept, scaled down
    per pixel only as far as the RGB gamut requires: the luminance is exactly ``gray``'s."""
    unit, y = colors.to_unit(rgb.astype(np.float64)), colors.to_unit(gray.astype(np.float64))
    chroma = unit - colors.to_unit(colors.rgb_to_gray(rgb).astype(np.float64))  # zero luminance by construction
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(chroma > 0, (1.0 - y) / chroma, np.where(chroma < 0, -y / chroma, np.inf))
    scale = np.clip(room.min(axis=-1, keepdims=True), 0.0, 1.0)
    return colors.from_unit(y + scale * chroma).astype(np.float32)


def _write(job: _Job, model: Model, output: Path, compare: bool) -> None:
    pixels = render(job, model.task)
    target = output / job.relative
    target.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    if job.kind == "JPEG":
        image.save(target, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(target, format="PNG")
    if compare:
        sheet(job, model.task, pixels).save(target.with_name(target.name + COMPARE_SUFFIX), format="PNG")


def sheet(job: _Job, task: Task, pixels: np.ndarray) -> Image.Image:
    """input | output (| original): the model's input as an image, its output, and, for a colouriser given a
    colour photograph, the photograph; labelled, side by side, at most :data:`COMPARE_HEIGHT` px high."""
    def as_image(values: np.ndarray) -> Image.Image:
        return Image.fromarray(np.clip(np.rint((values + 1.0) * 127.5), 0, 255).astype(np.uint8))

    panels = [("input", as_image(task.input_rgb(job.x[None])[0])), ("output", Image.fromarray(pixels).convert("RGB"))]
    original = (job.rgb + 1.0) * 127.5
    if task.kind == "colorize" and is_colour(original):
        panels.append(("original", as_image(job.rgb)))
    scale = min(1.0, COMPARE_HEIGHT / panels[0][1].height)
    size = (max(1, round(panels[0][1].width * scale)), max(1, round(panels[0][1].height * scale)))
    label, gap = 14, 4
    out = Image.new("RGB", (len(panels) * (size[0] + gap) - gap, size[1] + label), "white")
    draw = ImageDraw.Draw(out)
    for i, (name, panel) in enumerate(panels):
        left = i * (size[0] + gap)
        out.paste(panel.resize(size, Image.Resampling.LANCZOS) if scale < 1 else panel, (left, label))
        draw.text((left + 2, 1), name, fill="black")
    return out


def is_colour(pixels: np.ndarray) -> bool:
    """Whether a photograph (0-255 values, ``(H, W, 3)``) has colour: its channels differ by more than
    :data:`COLOUR_THRESHOLD` on average."""
    spread = np.abs(pixels[..., 0] - pixels[..., 1]) + np.abs(pixels[..., 1] - pixels[..., 2])
    return bool(spread.mean() > COLOUR_THRESHOLD)


if __name__ == "__main__":
    raise SystemExit(run(main))
