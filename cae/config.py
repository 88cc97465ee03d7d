"""Typed, validated configurations for one CAE and its training run.

A trial of a sweep is described by a *flat* dict (what a search space samples); :func:`from_flat` turns it
into a :class:`ModelConfig` and a :class:`TrainConfig`, validating every value before anything is built.
Every default is declared (and explained) here, once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cae import precision as precisions
from cae.errors import ModelConfigError

# Image sizes: powers of two, so that every encoder level halves them exactly; 8 px is the smallest image a
# dataset yields and 256 px the largest it resizes to (every reader checks these: spaces, cae.data, models).
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 256
ACTIVATIONS = ("relu", "elu", "gelu", "swish", "leaky_relu", "tanh")
UPSAMPLE_MODES = ("upsampling", "transpose")
LOSSES = ("mse", "ssim", "mse+ssim")
# The learning rate over training: constant, or a cosine decay from lr to 0 over the whole max_epochs.
LR_SCHEDULES = ("constant", "cosine")
# The validation metrics of every epoch's history record; those of the kept epoch describe the kept model.
# val_colorfulness (tasks scored in RGB; absent for a gray one): the mean Hasler-Süsstrunk colourfulness of the
# predictions on the val split (cae.colorfulness), an objective beside an MSE, never alone.
VAL_METRICS = ("val_mse", "val_loss", "val_native_mse", "val_psnr", "val_ssim", "val_colorfulness")
# What early stopping may watch: the sweep's objective, so that the epoch whose weights are kept and tested is
# the one the objective ranks. Not colourfulness: alone it rewards invented colour (a kept epoch follows an MSE).
MONITORS = tuple(m for m in VAL_METRICS if m != "val_colorfulness")


def monitor_mode(metric: str) -> str:
    """``"max"`` for a PSNR, SSIM or colourfulness (higher is better), ``"min"`` for an MSE or a loss."""
    return "max" if metric.endswith(("psnr", "ssim", "colorfulness")) else "min"


def parse_filters(value: str | int | Sequence[int]) -> tuple[int, ...]:
    """Parse filters per level: ``"32-48-64"``, ``"32,48,64"``, ``[32, 48, 64]`` or a single int."""
    if isinstance(value, bool):
        raise ModelConfigError(f"filters {value!r} is not a list of integers; write it like 32-48-64")
    if isinstance(value, int):
        return (value,)
    if isinstance(value, str):
        parts = [p for p in value.replace(",", "-").split("-") if p.strip()]
        try:
            return tuple(int(p) for p in parts)
        except ValueError:
            raise ModelConfigError(
                f"filters {value!r} is not a list of integers; write it like 32-48-64"
            ) from None
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ModelConfigError(f"filters {value!r} is not a list of integers; write it like 32-48-64") from None


def filters_from_growth(base: int, growth: float, depth: int) -> tuple[int, ...]:
    """Filters per level from a base count and a growth factor, e.g. (32, 1.5, 3) -> (32, 48, 72)."""
    if base < 1 or growth <= 0 or depth < 1:
        raise ModelConfigError(
            f"filters_base={base}, filters_growth={growth}, depth={depth}: all must be positive"
        )
    return tuple(max(1, int(round(base * growth**i))) for i in range(depth))


def format_filters(filters: Sequence[int]) -> str:
    """The readable form used in tables and on the command line: ``32-48-64``."""
    return "-".join(str(f) for f in filters)


@dataclass(frozen=True)
class ModelConfig:
    """The architecture of one convolutional autoencoder.

    ``filters`` has one entry per down-sampling level, so ``depth == len(filters)``; each level is
    ``convs_per_level`` convolutions followed by a stride-2 max-pool. The bottleneck flattens the deepest
    feature map into a dense latent vector of ``latent_dim`` units (a real bottleneck, not just a narrow
    feature map), and the decoder mirrors the encoder.
    """

    filters: tuple[int, ...] = (32, 48, 64)  # the 32-48-64 baseline of the published comparison
    convs_per_level: int = 1
    kernel_size: int = 3
    latent_dim: int = 128
    activation: str = "relu"
    batch_norm: bool = False
    skip: bool = False  # U-Net-like skip connections from each encoder level to its decoder twin
    upsample: str = "upsampling"  # "upsampling" (nearest + conv) or "transpose" (Conv2DTranspose)

    @property
    def depth(self) -> int:
        return len(self.filters)

    def validate(self, image_size: int) -> None:
        """Raise :class:`ModelConfigError` when this architecture cannot be built for ``image_size``."""
        if not self.filters:
            raise ModelConfigError("filters is empty; give at least one level, e.g. 32-48-64")
        if any(f < 1 for f in self.filters):
            raise ModelConfigError(f"filters {format_filters(self.filters)} must all be >= 1")
        if self.depth > 8:
            raise ModelConfigError(f"depth {self.depth} is absurd; use at most 8 down-sampling levels")
        if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE or image_size & (image_size - 1):
            raise ModelConfigError(
                f"image size {image_size} must be a power of two from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} (e.g. 32)"
            )
        if 2**self.depth > image_size:
            raise ModelConfigError(
                f"depth {self.depth} needs images of at least {2**self.depth}px but the image size is "
                f"{image_size}; use at most {int(math.log2(image_size))} levels or larger images"
            )
        if not 1 <= self.convs_per_level <= 4:
            raise ModelConfigError(f"convs_per_level {self.convs_per_level} must be between 1 and 4")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0 or self.kernel_size > 11:
            raise ModelConfigError(f"kernel_size {self.kernel_size} must be odd, between 1 and 11")
        if not 1 <= self.latent_dim <= 65536:
            raise ModelConfigError(f"latent_dim {self.latent_dim} must be between 1 and 65536")
        if self.activation not in ACTIVATIONS:
            raise ModelConfigError(f"activation {self.activation!r} is unknown; choose from {ACTIVATIONS}")
        if self.upsample not in UPSAMPLE_MODES:
            raise ModelConfigError(f"upsample {self.upsample!r} is unknown; choose from {UPSAMPLE_MODES}")

    def describe(self) -> str:
        """A short readable architecture label: ``32-48-64 k3 z128 skip``."""
        label = f"{format_filters(self.filters)} k{self.kernel_size} z{self.latent_dim}"
        if self.convs_per_level > 1:
            label += f" c{self.convs_per_level}"
        if self.batch_norm:
            label += " bn"
        if self.skip:
            label += " skip"
        if self.upsample == "transpose":
            label += " tconv"
        return label


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained and scored."""

    task: str = "reconstruct"
    lr: float = 1e-3  # Adam learning rate
    lr_schedule: str = "constant"  # one of LR_SCHEDULES; "cosine" ends near 0 at the last epoch
    batch_size: int = 64
    epochs: int = 10  # maximum epochs; early stopping may end sooner
    loss: str = "mse"  # "mse", "ssim" (1 - SSIM on [0,1]) or "mse+ssim"
    patience: int | None = 5  # early-stopping patience in epochs; None disables early stopping
    # What early stopping and the best-weights restore watch (one of MONITORS). val_mse is the MSE in the
    # reference space (RGB for colorization), the sweep's default objective, not the loss a model trains on.
    monitor: str = "val_mse"
    noise: float = 0.1  # std of the Gaussian noise added by the denoise task, in [-1,1] units
    seed: int = 0  # weight initialisation, shuffling and task noise
    # The floating-point precision it trains in (cae.precision.PRECISIONS): "auto" lets its resolve() pick the
    # fastest safe policy for the machine; float32 by default, so that a study or a test that does not ask keeps
    # the numbers it always had. A nuisance setting: it changes speed, not (measured) quality.
    precision: str = "float32"

    def validate(self) -> None:
        """Raise :class:`ModelConfigError` for non-positive or unknown settings."""
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and 0 < self.lr < 10):
            raise ModelConfigError(f"learning rate {self.lr} must be a positive number below 10 (e.g. 1e-3)")
        if self.batch_size < 1:
            raise ModelConfigError(f"batch size {self.batch_size} must be a positive integer (e.g. 64)")
        if self.epochs < 1:
            raise ModelConfigError(f"epochs {self.epochs} must be a positive integer")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ModelConfigError(f"lr_schedule {self.lr_schedule!r} is unknown; choose from {LR_SCHEDULES}")
        if self.loss not in LOSSES:
            raise ModelConfigError(f"loss {self.loss!r} is unknown; choose from {LOSSES}")
        if self.monitor not in MONITORS:
            raise ModelConfigError(f"monitor {self.monitor!r} is unknown; choose from {MONITORS}")
        if self.patience is not None and self.patience < 1:
            raise ModelConfigError(f"patience {self.patience} must be >= 1 (or omitted to disable)")
        if not 0 <= self.noise <= 2:
            raise ModelConfigError(f"noise {self.noise} must be between 0 and 2")
        precisions.check(self.precision)


@dataclass(frozen=True)
class RunConfig:
    """One trial: the architecture, its training, and what it is trained on."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: str = "embedded"
    image_size: int = 32

    def validate(self) -> None:
        self.model.validate(self.image_size)
        self.train.validate()

    def to_flat(self) -> dict[str, Any]:
        """The flat dict form (JSON-friendly; filters as ``"32-48-64"``)."""
        flat: dict[str, Any] = {"data": self.data, "image_size": self.image_size}
        for part in (self.model, self.train):
            for f in dataclasses.fields(part):
                flat[f.name] = getattr(part, f.name)
        flat["filters"] = format_filters(self.model.filters)
        flat["depth"] = self.model.depth
        return flat


_MODEL_KEYS = {f.name for f in dataclasses.fields(ModelConfig)}
_TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)}
# Keys a flat config may carry that are not fields: derived or alternative spellings.
# Keys of a trial's flat config that are not the model's or training's: the data (which split: split_seed).
_EXTRA_KEYS = {"data", "image_size", "depth", "filters_base", "filters_growth", "max_epochs", "limit", "split_seed"}


def from_flat(flat: Mapping[str, Any]) -> RunConfig:
    """Build and validate a :class:`RunConfig` from a flat dict such as a search space samples.

    ``filters`` may be a list or ``"32-48-64"``; alternatively ``filters_base`` + ``filters_growth`` +
    ``depth``. ``max_epochs`` is accepted as a synonym of ``epochs``. Unknown keys are refused.
    """
    unknown = set(flat) - _MODEL_KEYS - _TRAIN_KEYS - _EXTRA_KEYS
    if unknown:
        allowed = sorted(_MODEL_KEYS | _TRAIN_KEYS | _EXTRA_KEYS)
        raise ModelConfigError(f"unknown config keys {sorted(unknown)}; allowed: {allowed}")
    values = dict(flat)
    if "max_epochs" in values:
        values.setdefault("epochs", values.pop("max_epochs"))
        values.pop("max_epochs", None)
    if "filters" in values:
        filters = parse_filters(values["filters"])
    elif "filters_base" in values:
        filters = filters_from_growth(
            int(values["filters_base"]), float(values.get("filters_growth", 2.0)), int(values.get("depth", 3))
        )
    else:
        filters = ModelConfig().filters
    if "depth" in values and int(values["depth"]) != len(filters):
        raise ModelConfigError(
            f"depth {values['depth']} does not match filters {format_filters(filters)} ({len(filters)} levels)"
        )
    model_kwargs = {k: values[k] for k in _MODEL_KEYS if k in values and k != "filters"}
    train_kwargs = {k: values[k] for k in _TRAIN_KEYS if k in values}
    try:
        model = ModelConfig(filters=filters, **_coerce(ModelConfig, model_kwargs))
        train = TrainConfig(**_coerce(TrainConfig, train_kwargs))
    except (TypeError, ValueError) as exc:
        raise ModelConfigError(f"invalid config value: {exc}") from None
    run = RunConfig(
        model=model,
        train=train,
        data=str(values.get("data", "embedded")),
        image_size=int(values.get("image_size", 32)),
    )
    run.validate()
    return run


def _coerce(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Coerce values to the field types (YAML and Optuna give ints for floats, numpy scalars, ...)."""
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        kind = str(types[key])
        if value is None:
            out[key] = None
        elif kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(f"{key}={value!r} is not a boolean")
                out[key] = value.lower() in ("true", "1", "yes")
            else:
                out[key] = bool(value)
        elif kind.startswith("int"):
            if not math.isfinite(float(value)) or float(value) != int(float(value)):
                raise ValueError(f"{key}={value!r} is not an integer")
            out[key] = int(float(value))
        elif kind == "float":
            out[key] = float(value)
        else:
            out[key] = str(value)
    return out
