"""The tidy trial table and epoch history: their columns, how they are written and read back.

``trials.csv`` has one row per trial. Fixed columns come first (identity, status, the metrics and the cost),
then one column per hyperparameter of the flat trial config (``filters``, ``kernel_size``, ``lr``, ...).
``history.csv`` has one row per trial and epoch. Readers always get these columns, in this order, even for a
study with no finished trial yet; a table that cannot be parsed is reported, never silently read as empty.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cae.errors import StudyError
from results.files import read_limited, write_atomic
from results.folder import StudyPaths, read_meta

# Trial status, one vocabulary for every engine (Optuna's names, with FAIL spelled out).
COMPLETE, PRUNED, FAILED, RUNNING, PENDING = "COMPLETE", "PRUNED", "FAILED", "RUNNING", "PENDING"
STATUSES = (COMPLETE, PRUNED, FAILED, RUNNING, PENDING)

TRIAL_COLUMNS = (
    "trial_id",  # the engine's id (Ray trial id or keras-tuner trial id)
    "number",  # Optuna trial number (order of creation), -1 when the engine has no Optuna trial
    "status",
    # Empty for a search trial. A seed repeat (``python -m search confirm``) holds the trial_id of the search
    # trial whose configuration it re-trains with a fresh training seed (same data split); repeats are never
    # ranked as trials of their own, the report pools them with their original into mean and 95 % CI.
    "repeat_of",
    "architecture",  # readable label such as "32-48-64 k3 z128 skip"
    # The Keras dtype policy the trial trained in (float32, mixed_bfloat16, mixed_float16): what its precision
    # setting ("auto" among them, a column of its own) resolved to on the node that ran it (cae.precision).
    "policy",
    # Validation scores of the kept epoch (best_epoch: the one early stopping keeps and the test scores come
    # from), in the reference space (RGB for colorization); val_mse is the default objective.
    "val_mse",
    "val_loss",
    "val_native_mse",
    "val_psnr",
    "val_ssim",
    # The mean colourfulness of the kept epoch's val predictions (tasks scored in RGB; cae.colorfulness): an
    # objective beside an MSE for colourisers (``--objectives val_mse,val_colorfulness``).
    "val_colorfulness",
    "test_mse",
    # Half-width of test_mse's 95 % interval over which images are in the test split: a percentile bootstrap
    # that resamples the test split's independent units (regions of photographs for embedded, images otherwise;
    # cae.data.bootstrap), the model fixed. It covers that variance only: not the training seed's (search
    # confirm's seed repeats) nor the split's train/val side. On the embedded data it is conservative: the split
    # is balanced for difficulty, so across split seeds a test MSE moves less (trivial baseline at 32 px: +/-10 %
    # over split seeds 0-199, where the bootstrap says +/-40 %).
    "test_mse_ci95",
    "test_psnr",
    "test_ssim",
    # The mean Hasler-Susstrunk colourfulness (cae.colorfulness, 0-255 scale: 0 gray, ~33 moderately, ~59 quite
    # colourful) of the predictions and of the true images of the test split, for tasks scored in RGB: MSE
    # rewards grey-ish colourisations, so a colouriser far below its truth is washed out.
    "test_colorfulness",
    "truth_colorfulness",
    "native_mse",
    # The task's trivial baseline on the test split: 2x down/up-sampling for reconstruction (it keeps 1/4 of
    # the values, more than any latent), gray as colour for colorization, the noisy input for denoising.
    "trivial_mse",
    "trivial_psnr",
    "trivial_ssim",
    "trivial_native_mse",
    "skill",  # 1 - test_mse / trivial_mse
    # The same interval for skill, the model's and the baseline's errors resampled together (paired), so what
    # a harder test set does to both cancels where they move alike.
    "skill_ci95",
    # PCA with pca_k = latent_dim components fitted on the train split (the optimal linear autoencoder at the
    # model's code size; cae.baselines), on the test split; NaN for colorization.
    "pca_k",
    "pca_mse",
    "pca_psnr",
    "pca_ssim",
    "skill_pca",  # 1 - test_mse / pca_mse: what the CAE gains over the best linear code of its size
    "pca_matched",  # False for skip connections, which bypass the bottleneck: not compression-matched
    "params",
    "epochs",
    "best_epoch",
    "train_seconds",
    "images_per_second",
    "setup_seconds",  # the trial's own cost outside training: start to first epoch,
    "validation_seconds",  # the epochs' validation passes,
    "checkpoint_seconds",  # saving and reporting per-epoch checkpoints,
    "eval_seconds",  # and scoring the kept model on the test split
    "node",  # the Ray node (IP) the trial last ran on
    "error",  # why a trial failed or was pruned
    "started_at",
    "finished_at",
)
# The trial table's columns that hold text; every other fixed column holds numbers.
TRIAL_TEXT_COLUMNS = (
    "trial_id", "status", "repeat_of", "architecture", "policy", "node", "error", "started_at", "finished_at",
)
# The largest trials.csv / history.csv read: a row of either is 100-700 bytes, so 256 MiB holds some 400,000
# trials or 2 million epochs, far beyond a study; a larger file is not ours, and reading it is bounded.
MAX_TABLE_BYTES = 256 * 2**20
HISTORY_COLUMNS = (
    "trial_id", "epoch", "loss", "val_loss", "mse", "val_mse", "val_native_mse", "psnr", "val_psnr", "ssim",
    "val_ssim", "val_colorfulness", "seconds",
)


@dataclass(frozen=True)
class Study:
    """A study read back: its metadata and its tables, ready for analysis."""

    paths: StudyPaths
    meta: dict[str, Any]
    trials: pd.DataFrame
    history: pd.DataFrame

    @property
    def name(self) -> str:
        return self.paths.name

    @property
    def param_columns(self) -> list[str]:
        """The hyperparameter columns of the trial table."""
        return [c for c in self.trials.columns if c not in TRIAL_COLUMNS]

    def roles(self) -> dict[str, str]:
        """Hyperparameter -> scientific / nuisance / fixed, as the study's space declared them."""
        return dict(self.meta.get("roles", {}))


def trials_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows (dicts) -> the trial table with the fixed columns first, then sorted hyperparameters."""
    df = pd.DataFrame(list(rows))
    params = sorted(c for c in df.columns if c not in TRIAL_COLUMNS)
    df = df.reindex(columns=[*TRIAL_COLUMNS, *params])
    if len(df):
        df = df.sort_values(["number", "trial_id"], kind="stable").reset_index(drop=True)
    return df


def history_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    extra = sorted(c for c in df.columns if c not in HISTORY_COLUMNS)
    df = df.reindex(columns=[*HISTORY_COLUMNS, *extra])
    if len(df):
        df = df.sort_values(["trial_id", "epoch"], kind="stable").reset_index(drop=True)
    return df


def write_tables(paths: StudyPaths, trials: pd.DataFrame, history: pd.DataFrame) -> None:
    write_atomic(paths.trials_csv, trials.to_csv(index=False), paths.folder)
    write_atomic(paths.history_csv, history.to_csv(index=False), paths.folder)


def _read_csv(path: Any, columns: tuple[str, ...]) -> pd.DataFrame:
    """A table of the study (missing: empty); only a regular file up to :data:`MAX_TABLE_BYTES` is read."""
    try:
        raw = read_limited(path, MAX_TABLE_BYTES)
    except FileNotFoundError:
        return pd.DataFrame(columns=list(columns))
    except OSError as exc:
        raise StudyError(f"{path} cannot be read ({exc.strerror or exc}); check its permissions") from None
    try:
        text = raw.decode("utf-8")
        # Trial ids are text (Ray's are hex: "00123456" or "1234e567" must not become numbers), in repeat_of too.
        ids = {"trial_id": str, "repeat_of": str}
        df = pd.read_csv(io.StringIO(text), dtype=ids) if text.strip() else pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise StudyError(f"{path} is corrupt ({reason}); `python -m search resume` rebuilds it") from None
    missing = [c for c in columns[:3] if c not in df.columns] if len(df.columns) else []
    if missing:
        raise StudyError(f"{path} lacks the columns {missing}; `python -m search resume` rebuilds it")
    return df.reindex(columns=[*columns, *(c for c in df.columns if c not in columns)])


def load_study(paths: StudyPaths) -> Study:
    """Read a study folder back for analysis (raises :class:`StudyError` for an unknown or corrupt study).

    Beyond :func:`read_meta`, the fields a table or ranking relies on are checked here, so that every
    reader (``search list``, the report) can trust them: the objective (``metric`` naming a column,
    ``mode``), ``roles`` and ``params``, and numbers in every numeric column.
    """
    meta = read_meta(paths)
    trials = _numeric(_read_csv(paths.trials_csv, TRIAL_COLUMNS), TRIAL_COLUMNS, TRIAL_TEXT_COLUMNS, paths.trials_csv)
    history = _numeric(_read_csv(paths.history_csv, HISTORY_COLUMNS), HISTORY_COLUMNS, ("trial_id",), paths.history_csv)
    for df, path in ((trials, paths.trials_csv), (history, paths.history_csv)):
        _check_rows(df, path)
        df["trial_id"] = df["trial_id"].astype(str)
    _check_meta(meta, trials, paths)
    return Study(paths=paths, meta=meta, trials=trials, history=history)


def _check_meta(meta: Mapping[str, Any], trials: pd.DataFrame, paths: StudyPaths) -> None:
    def corrupt(what: str) -> StudyError:
        return StudyError(f"{paths.meta} is corrupt: {what}; restore it or start a new study")

    metric, mode = meta.get("metric"), meta.get("mode")
    if not isinstance(metric, str) or metric not in trials.columns or metric in TRIAL_TEXT_COLUMNS:
        raise corrupt(f"its metric {_short(metric)} is not a numeric column of the trial table")
    if mode not in ("min", "max"):
        raise corrupt(f"its mode {_short(mode)} is not 'min' or 'max'")
    roles = meta.get("roles", {})
    if not isinstance(roles, dict) or not all(isinstance(v, str) for v in roles.values()):
        raise corrupt(f"its roles {_short(roles)} are not a mapping of parameter to role")
    params = meta.get("params")
    if params is not None and not (isinstance(params, list) and all(isinstance(p, str) for p in params)):
        raise corrupt(f"its params {_short(params)} are not a list of parameter names")


def _check_rows(df: pd.DataFrame, path: Any) -> None:
    """Every row names its trial, and a trial row has a status of the vocabulary (:data:`STATUSES`)."""
    missing = df["trial_id"].isna()
    if missing.any():
        raise StudyError(
            f"{path} is corrupt: row {int(missing.to_numpy().argmax()) + 1} has no trial_id; "
            "`python -m search resume` rebuilds it"
        )
    if "status" in df.columns:
        unknown = ~df["status"].isin(STATUSES)
        if unknown.any():
            row = int(unknown.to_numpy().argmax())
            raise StudyError(
                f"{path} is corrupt: row {row + 1} has status {_short(df['status'].iloc[row])}, not one of "
                f"{', '.join(STATUSES)}; `python -m search resume` rebuilds it"
            )


def _numeric(df: pd.DataFrame, columns: Iterable[str], text_columns: Iterable[str], path: Any) -> pd.DataFrame:
    """``df`` with its fixed numeric ``columns`` as numbers; a cell that is not one makes the table corrupt."""
    text = set(text_columns)
    for column in (c for c in columns if c in df.columns and c not in text):
        if df[column].dtype.kind in "iuf":
            continue
        numbers = pd.to_numeric(df[column], errors="coerce")
        bad = df[column].notna() & numbers.isna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise StudyError(
                f"{path} is corrupt: column {column} holds {_short(df[column].iloc[row])} in row {row + 1}, not a "
                "number; `python -m search resume` rebuilds it"
            )
        df[column] = numbers
    return df


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
