"""An exported model's folder and its model card (``model.json``): what a user needs to apply it without caesweep.

``python -m search export`` writes, into one folder::

    model.keras    the model alone (architecture and weights, no optimizer, no custom objects): plain Keras
                   loads it with ``keras.models.load_model(path, compile=False)``
    saved_model/   the same model as a TensorFlow SavedModel (``model.export``), for TF Serving and other runtimes
    model.json     the card: the task, its colour space and conversions, the input size and pixel range, the
                   resolved configuration, the study and trial it came from, its scores with their intervals and
                   baselines, the package versions

This module defines the card's fixed part (:func:`conventions`, from the task alone) and reads a card back
(:func:`read_card`) for :mod:`cae.apply`; :mod:`search.export` adds the study's part. Models are always loaded
with Keras's ``safe_mode`` (no Python ``lambda`` in a model file is ever run): a model file is data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cae.errors import UsageError
from cae.tasks import TASKS, Task, get_task

CARD_FILE = "model.json"
MODEL_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"
ONNX_FILE = "model.onnx"  # with ``search export --onnx``: the same model for ONNX Runtime (opset ONNX_OPSET)
ONNX_OPSET = 17
FORMAT = "caesweep-model-card/1"
MAX_CARD_BYTES = 4 * 2**20  # a card is a few KB; a larger model.json is not one

# How each space is stored in a model's input or output, for the card (the conventions of cae.colors: every
# channel fits a tanh output in [-1, 1]).
ENCODINGS = {
    "rgb": "RGB in [-1, 1]: an 8-bit value v is stored as v / 127.5 - 1 (back: (x + 1) * 127.5)",
    "gray": "luminance Y = 0.299 R + 0.587 G + 0.114 B on [0, 1] (BT.601), stored as 2Y - 1",
    "uv": "BT.601 chroma on RGB in [0, 1]: U = -0.14713 R - 0.28886 G + 0.436 B and V = 0.615 R - 0.51499 G "
    "- 0.10001 B, stored as U / 0.436 and V / 0.615",
    "lightness": "CIE L* (D65, sRGB; as skimage.color.rgb2lab) stored as L / 50 - 1",
    "ab": "CIE a*, b* (D65, sRGB; as skimage.color.rgb2lab) stored as a / 128 and b / 128",
}
# Per task: the spaces of the model's input and output, and how an output becomes an image.
_SPACES = {
    "reconstruct": ("rgb", "rgb", "the output is the image (RGB)"),
    "reconstruct-gray": ("gray", "gray", "the output is the gray image"),
    "colorize-rgb": ("gray", "rgb", "the output is an RGB image; caesweep keeps the input's luminance and the "
                     "output's chroma (RGB -> YUV, Y replaced by the input's, back to RGB)"),
    "colorize-yuv": ("gray", "uv", "join the input (as Y) with the output (as U, V) and convert YUV -> RGB"),
    "colorize-lab": ("lightness", "ab", "join the input (as L) with the output (as a, b) and convert LAB -> RGB"),
    "denoise": ("rgb", "rgb", "the output is the clean image (RGB)"),
}


def conventions(task: Task, image_size: int) -> dict[str, Any]:
    """The card's fixed part for a model of ``task`` on ``image_size`` px images: what goes in, what comes out,
    in which colour space and pixel range, and how to apply it to a larger photograph."""
    source, target, join = _SPACES[task.name]
    return {
        "task": task.name,
        "kind": task.kind,
        "description": task.description,
        "image_size": image_size,
        "pixel_range": [-1.0, 1.0],
        "input": {"shape": [None, image_size, image_size, task.in_channels], "space": source,
                  "encoding": ENCODINGS[source]},
        "output": {"shape": [None, image_size, image_size, task.out_channels], "space": target,
                   "encoding": ENCODINGS[target], "to_image": join},
        "apply": (
            f"The model sees {image_size}x{image_size} pixels at a time. python -m cae.apply runs it on photographs "
            f"of any size in tiles of {image_size} px overlapping by half, blended with a squared-sine window (the "
            "weights of overlapping tiles sum to one), and writes each output at its input's size"
            + ("; a colouriser keeps the input's luminance exactly and predicts only the chroma" if task.kind ==
               "colorize" else "") + "."
        ),
    }


@dataclass(frozen=True)
class Card:
    """The part of a card :mod:`cae.apply` relies on, checked; ``raw`` is the whole card."""

    task: Task
    image_size: int
    model_file: Path
    raw: dict[str, Any]


def read_card(folder: Path) -> Card:
    """The card of an exported model folder.

    Raises:
        UsageError: no readable ``model.json``, not a caesweep card, an unknown task or no ``model.keras``.
    """
    path = folder / CARD_FILE
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CARD_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(
            f"{folder} has no {CARD_FILE}, so it is not a model exported by `python -m search export`; pass the "
            "exported folder or a .keras file"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read {path} ({exc.strerror or exc})") from None
    try:
        card = json.loads(raw.decode("utf-8")) if len(raw) <= MAX_CARD_BYTES else None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        card = None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise UsageError(f"{path} is not a caesweep model card ({FORMAT}); export the model again")
    task_name, size = card.get("task"), card.get("image_size")
    if task_name not in TASKS or not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise UsageError(f"{path} names no known task and image size (task {task_name!r}, image_size {size!r})")
    model_file = folder / MODEL_FILE
    if not model_file.is_file():
        raise UsageError(f"{folder} has a card but no {MODEL_FILE}; export the model again")
    return Card(get_task(task_name), size, model_file, card)


def load_keras_model(path: Path) -> Any:
    """A ``.keras`` model file, loaded as data: Keras's ``safe_mode`` (no lambda in it runs) and no compile.

    Raises:
        UsageError: the file is not a Keras model.
    """
    from cae.runtime import keras

    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except (ValueError, OSError, TypeError, KeyError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UsageError(f"{path} cannot be loaded as a Keras model ({reason})") from None
