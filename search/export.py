"""``python -m search export``: a study's chosen model, out of the study folder, for use without caesweep.

::

    python -m search export --study NAME [--root R] [--trial ID | --rank K] --to DIR [--onnx]

writes into the new (or empty) folder DIR (see :mod:`cae.card`): ``model.keras``, which plain Keras loads with
``keras.models.load_model(path, compile=False)`` in a process that never imports caesweep; ``saved_model/``, the
same model as a TensorFlow SavedModel (``model.export``) for serving; and ``model.json``, its card: the task,
its colour space and conversions, the input size and pixel range, the resolved configuration, the study and
trial it came from, its validation and test scores with their intervals and baselines, and the package versions.
With ``--onnx`` (``pip install 'caesweep[onnx]'``: tf2onnx, onnx, ONNX Runtime) also ``model.onnx``, converted by
tf2onnx (opset 17, input ``image`` with a free batch size) and checked before it is kept: ONNX Runtime's outputs
on fixed random inputs must match Keras's within 1e-4 (the largest difference is in the card).
``python -m cae.apply --model DIR`` runs it on your own images.

Which model: ``--trial ID``, or the ``--rank K``-th (default 1) of the study's ranking by its first objective
in the direction it was run with. When ``search confirm`` has re-trained configurations with fresh seeds,
those are ranked first, by the mean of the objective over their fresh seeds (a search run's own score is the
best of many and so optimistic), and the configurations that were not re-trained after them. Only a finished
trial with a kept model (``models/<trial_id>.keras``) can be exported; the model is the configuration's search
run, loaded with Keras's ``safe_mode`` (a study folder is data).

Everything is checked before anything is written, and DIR appears whole or not at all (it is written beside
itself under a temporary name, then renamed).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import results
from cae.cli import ArgumentParser
from cae.errors import StudyError, UsageError
from results.trials import repeat_trials, search_trials

# The card's score groups: validation scores of the kept epoch, test scores, and the baselines on the same images.
VAL_KEYS = ("val_mse", "val_loss", "val_native_mse", "val_psnr", "val_ssim", "val_colorfulness")
TEST_KEYS = ("test_mse", "test_mse_ci95", "test_psnr", "test_ssim", "native_mse", "skill", "skill_ci95",
             "test_colorfulness", "truth_colorfulness")
BASELINE_KEYS = ("trivial_mse", "trivial_psnr", "trivial_ssim", "trivial_native_mse", "pca_k", "pca_mse", "pca_psnr",
                 "pca_ssim", "skill_pca", "pca_matched")
INTERVALS = (
    "test_mse_ci95 and skill_ci95 are half-widths of 95 % percentile-bootstrap intervals over the test split's "
    "independent units (which images are in the test set), the model fixed: they do not include the training "
    "seed's variance, which seeds.*_ci95 (Student t over fresh training seeds of search confirm) does"
)
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Choice:
    """The trial to export and why it was chosen."""

    row: pd.Series  # its row of the trial table
    reason: str
    seeds: dict[str, Any]  # its configuration's statistics over fresh seeds ({} without repeats)


def build_parser(parser: ArgumentParser | None = None) -> ArgumentParser:
    """The options of ``export``; given a (sub)parser, they are added to it (``python -m search export``)."""
    p = parser or ArgumentParser(
        prog="python -m search export",
        description="Write a study's chosen model (plain-Keras .keras, a TensorFlow SavedModel) and its model card "
        "into a new folder, for use without caesweep (python -m cae.apply runs it on your images).",
    )
    p.add_argument("--study", required=True, help="the study to export from")
    p.add_argument("--root", default=None, help="the results root (default: results)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--trial", default=None, help="the trial id to export (python -m analysis.report lists them)")
    which.add_argument("--rank", type=int, default=None, help="the K-th of the study's ranking (default 1: the best)")
    p.add_argument("--to", required=True, type=Path, help="a new or empty folder to write the model and card into")
    p.add_argument("--onnx", action="store_true",
                   help="also model.onnx for ONNX Runtime, checked against Keras (pip install 'caesweep[onnx]')")
    return p


def prepare(args: Any) -> Callable[[], int]:
    """Check everything (the study, the choice, the target folder, the model), writing nothing; return the export."""
    if args.rank is not None and args.rank < 1:
        raise UsageError(f"--rank must be at least 1, got {args.rank}")
    onnx = bool(getattr(args, "onnx", False))
    if onnx:
        missing = [m for m in ("tf2onnx", "onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            raise UsageError(f"--onnx needs {', '.join(missing)}: pip install 'caesweep[onnx]', or export without "
                             "--onnx")
    target = Path(args.to).expanduser()
    _check_target(target)
    study = results.load_study(results.study_paths(args.study, args.root))
    choice = choose(study, args.trial, args.rank or 1)
    trial_id = str(choice.row["trial_id"])
    model_path = study.paths.model_path(trial_id)
    from cae.card import load_keras_model

    model = load_keras_model(model_path)
    task = _task(study, choice.row, model, model_path)
    return lambda: _export(study, choice, model, task, target, onnx)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m search export ...`` (the lead's ``search`` CLI delegates its ``export`` subcommand here)."""
    return prepare(build_parser().parse_args(argv))()


# --- the choice ---------------------------------------------------------------------------------------------


def choose(study: results.Study, trial_id: str | None, rank: int) -> Choice:
    """The trial ``trial_id``, or the ``rank``-th of :func:`ranking`.

    Raises:
        StudyError: no finished trial with a kept model, an unknown trial id, or a rank beyond the ranking.
    """
    metric, mode = str(study.meta["metric"]), str(study.meta["mode"])
    trials = study.trials
    if trial_id is not None:
        rows = trials[trials["trial_id"] == trial_id]
        if rows.empty:
            known = ", ".join(trials["trial_id"].astype(str).head(8)) or "none"
            raise StudyError(f"study {study.name} has no trial {trial_id!r} (its trials: {known}"
                             f"{', ...' if len(trials) > 8 else ''})")
        row = rows.iloc[0]
        if not study.paths.model_path(trial_id).is_file():
            raise StudyError(f"trial {trial_id} of study {study.name} has no kept model ({row['status']}; only a "
                             f"finished trial's model is kept in {study.paths.models_dir})")
        return Choice(row, f"asked for by its trial id ({row['status']})", _seed_statistics(trials, row, metric))
    ranked = ranking(study, metric, mode)
    if not ranked:
        raise StudyError(
            f"study {study.name} has no finished trial with a kept model in {study.paths.models_dir} (a trial "
            "keeps its model when it finishes; a study on a remote root keeps none); nothing to export"
        )
    if rank > len(ranked):
        raise StudyError(f"--rank {rank}: study {study.name} ranks only {len(ranked)} trials with a kept model")
    return ranked[rank - 1]


def ranking(study: results.Study, metric: str, mode: str) -> list[Choice]:
    """The exportable trials, best first: configurations re-trained with fresh seeds by the mean of ``metric``
    over those seeds, then the others by their own ``metric``."""
    trials = study.trials
    done = search_trials(trials)
    done = done[(done["status"] == results.COMPLETE) & done[metric].notna()]
    done = done[[study.paths.model_path(str(t)).is_file() for t in done["trial_id"]]]
    sign = 1.0 if mode == "min" else -1.0
    confirmed, single = [], []
    for _, row in done.iterrows():
        seeds = _seed_statistics(trials, row, metric)
        if seeds:
            confirmed.append((sign * seeds[f"{metric}_mean"], row, seeds))
        else:
            single.append((sign * float(row[metric]), row, seeds))
    order = sorted(confirmed, key=lambda c: c[0]) + sorted(single, key=lambda c: c[0])
    n_confirmed, n = len(confirmed), len(order)
    choices = []
    for place, (_, row, seeds) in enumerate(order, 1):
        if seeds:
            reason = (f"#{place} of {n_confirmed} configurations re-trained by search confirm, by the mean {metric} "
                      f"({mode}) over {seeds['n']} fresh training seeds")
        elif n_confirmed:
            reason = (f"#{place} of {n}: after the {n_confirmed} re-trained configurations, by its own {metric} "
                      f"({mode}) over the {n - n_confirmed} that were not re-trained")
        else:
            reason = f"#{place} of {n} finished trials with a kept model, by {metric} ({mode}), one training seed each"
        choices.append(Choice(row, reason, seeds))
    return choices


def _seed_statistics(trials: pd.DataFrame, row: pd.Series, metric: str) -> dict[str, Any]:
    """The configuration's mean, standard deviation and 95 % Student-t interval over its finished fresh-seed
    repeats (search confirm), for ``metric`` and the test scores; {} without a finished repeat."""
    repeats = repeat_trials(trials)
    mine = repeats[(repeats["repeat_of"].astype(str) == str(row["trial_id"])) & (repeats["status"] == results.COMPLETE)]
    mine = mine[mine[metric].notna()]
    if mine.empty:
        return {}
    out: dict[str, Any] = {"n": len(mine), "trial_ids": [str(t) for t in mine["trial_id"]],
                           "variance": "training seed" + (" and data split" if _splits(mine) > 1 else "")}
    for key in dict.fromkeys([metric, "test_mse", "test_psnr", "test_ssim", "skill"]):
        if key not in mine:
            continue
        values = pd.to_numeric(mine[key], errors="coerce").dropna().to_numpy(dtype=float)
        if len(values):
            out[f"{key}_mean"] = float(np.mean(values))
            out[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
            out[f"{key}_ci95"] = _t_half_width(values)
    return out


def _splits(rows: pd.DataFrame) -> int:
    return int(rows["split_seed"].nunique()) if "split_seed" in rows else 1


def _t_half_width(values: np.ndarray) -> float | None:
    if len(values) < 2:
        return None
    from scipy import stats

    return float(stats.t.ppf((1 + CONFIDENCE) / 2, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values)))


# --- checks ----------------------------------------------------------------------------------------------------


def _check_target(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise UsageError(f"--to {target} exists and is not a folder; pass a new or empty folder")
    if target.is_dir() and any(target.iterdir()):
        raise UsageError(f"--to {target} exists and is not empty; pass a new or empty folder (nothing is replaced)")
    parent = target.resolve().parent
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--to {target}: {probe} is not writable")


def _setting(row: pd.Series, meta: Mapping[str, Any], key: str) -> Any:
    """A trial's setting: its own column (a searched value), else the study's."""
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        value = meta.get(key)
        if value is None:
            value = (meta.get("space") or {}).get("fixed", {}).get(key)
    return value


def _task(study: results.Study, row: pd.Series, model: Any, path: Path) -> Any:
    """The trial's task, checked against the model's shapes."""
    from cae.tasks import get_task

    name = _setting(row, study.meta, "task")
    try:
        task = get_task(str(name))
    except Exception:
        raise StudyError(f"study {study.name} does not say which task trial {row['trial_id']} did ({name!r})") from None
    channels = (int(model.input_shape[-1]), int(model.output_shape[-1]))
    if channels != (task.in_channels, task.out_channels) or len(model.input_shape) != 4:
        raise StudyError(f"{path} maps {channels[0]} channels to {channels[1]}, not what {task.name} does; it is not "
                         f"trial {row['trial_id']}'s model")
    return task


# --- the export ------------------------------------------------------------------------------------------------


def _export(study: results.Study, choice: Choice, model: Any, task: Any, target: Path, onnx: bool = False) -> int:
    from cae.card import CARD_FILE, MODEL_FILE, ONNX_FILE, SAVED_MODEL_DIR

    staging = target.parent / f".{target.name}.export-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        model.save(staging / MODEL_FILE)  # loaded without compiling: no optimizer, no custom loss in it
        model.export(str(staging / SAVED_MODEL_DIR), format="tf_saved_model", verbose=False)
        card = model_card(study, choice, model, task)
        if onnx:
            card["files"]["onnx"] = ONNX_FILE
            card["onnx"] = write_onnx(model, staging / ONNX_FILE)
        (staging / CARD_FILE).write_text(json.dumps(_plain(card), indent=2, allow_nan=False) + "\n")
        if target.is_dir():
            target.rmdir()  # empty, as checked; a file that appeared since makes this fail, and nothing is replaced
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    trial = choice.row["trial_id"]
    files = f"{MODEL_FILE}, {SAVED_MODEL_DIR}/, {ONNX_FILE + ', ' if onnx else ''}{CARD_FILE}"
    print(f"exported trial {trial} of study {study.name} ({task.name}, {card['trial']['architecture']}) to {target}: "
          f"{files}; chosen as {choice.reason}")
    print(f"use it: python -m cae.apply --model {target} --input PHOTOS --output OUT")
    return 0


ONNX_TOLERANCE = 1e-4  # the largest difference from Keras's outputs that ONNX Runtime's may show (pixels in [-1, 1])
ONNX_CHECK_IMAGES = 8


def write_onnx(model: Any, path: Path) -> dict[str, Any]:
    """Convert ``model`` to ONNX with tf2onnx at ``path`` and check it with ONNX Runtime against Keras on fixed
    random inputs; a model whose outputs differ by more than :data:`ONNX_TOLERANCE` is not kept (StudyError)."""
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    from cae.card import ONNX_OPSET

    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image"),)
    forward = tf.function(lambda image: model(image, training=False), input_signature=spec)
    tf2onnx.convert.from_function(forward, input_signature=spec, opset=ONNX_OPSET, output_path=str(path))
    inputs = np.random.default_rng(0).uniform(-1, 1, (ONNX_CHECK_IMAGES, *model.input_shape[1:])).astype(np.float32)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    output = session.run(None, {session.get_inputs()[0].name: inputs})[0]
    difference = float(np.max(np.abs(output - np.asarray(model(inputs, training=False)))))
    if not difference <= ONNX_TOLERANCE:
        path.unlink(missing_ok=True)
        raise StudyError(f"the ONNX conversion of this model differs from Keras by {difference:.3g} (more than "
                         f"{ONNX_TOLERANCE:g}); export it without --onnx")
    return {"file": path.name, "opset": ONNX_OPSET, "input": session.get_inputs()[0].name,
            "output": session.get_outputs()[0].name, "converter": f"tf2onnx {tf2onnx.__version__}",
            "checked": f"ONNX Runtime {onnxruntime.__version__} against Keras on {ONNX_CHECK_IMAGES} random inputs",
            "max_abs_difference": difference}


def model_card(study: results.Study, choice: Choice, model: Any, task: Any) -> dict[str, Any]:
    """The card of the export: the task's conventions, the configuration, where it came from, its scores."""
    from cae.card import FORMAT, MODEL_FILE, SAVED_MODEL_DIR, conventions
    from search.metadata import git_commit, versions

    row, meta = choice.row, study.meta
    size = int(model.input_shape[1])
    params = {p: _value(row[p]) for p in study.param_columns if p in row and _value(row[p]) is not None}
    fixed = dict((meta.get("space") or {}).get("fixed", {}))
    return {
        "format": FORMAT,
        "files": {"keras": MODEL_FILE, "saved_model": SAVED_MODEL_DIR},
        **conventions(task, size),
        "precision": str(model.dtype_policy.name),
        "configuration": {**fixed, **params, "image_size": size, "data": _setting(row, meta, "data"),
                          "split_seed": meta.get("split_seed"), "seed": _setting(row, meta, "seed")},
        "study": {
            "name": study.name, "study_id": meta.get("study_id"), "engine": meta.get("engine"),
            "space": meta.get("space_name"), "data": meta.get("data"), "objectives": meta.get("objectives"),
            "created_at": meta.get("created_at"), "git_commit": meta.get("git_commit"),
            "versions": meta.get("versions"),
        },
        "trial": {
            "trial_id": str(row["trial_id"]), "number": _value(row.get("number")),
            "repeat_of": _value(row.get("repeat_of")), "architecture": _value(row.get("architecture")),
            "params": _value(row.get("params")), "epochs": _value(row.get("epochs")),
            "best_epoch": _value(row.get("best_epoch")), "chosen_as": choice.reason,
        },
        "scores": {
            "pixel_range": [-1.0, 1.0],
            "space": "RGB with the true luminance joined (colorization), else the task's reference space",
            "validation": {k: _value(row.get(k)) for k in VAL_KEYS},
            "test": {k: _value(row.get(k)) for k in TEST_KEYS},
            "baselines": {k: _value(row.get(k)) for k in BASELINE_KEYS},
            "seeds": choice.seeds or None,
            "intervals": INTERVALS,
        },
        "exported": {"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": versions(), "git_commit": git_commit()},
    }


def _value(value: Any) -> Any:
    """A table cell as plain JSON: numbers as int/float, NaN and empty as None."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, str) and value.strip() == "":
        return None
    return value


def _plain(value: Any) -> Any:
    """``value`` with every non-finite float made None (the card is strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return _value(value) if isinstance(value, (np.generic,)) else value


if __name__ == "__main__":
    from cae.cli import run

    raise SystemExit(run(main))
