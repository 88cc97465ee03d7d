"""The settings of one sweep, validated before anything starts.

:class:`SweepOptions` is what ``python -m search run`` parses into, and what ``study.json`` stores so that
``resume`` runs the study exactly as it was started. Every check here is a user error with a one-line fix.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cae.errors import UsageError
from cae.precision import FLOAT16, PRECISIONS

SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc", "grid", "nsga2")
MULTI_OBJECTIVE_SAMPLERS = ("nsga2", "tpe", "random", "qmc", "grid", "gp")
# Samplers that draw their first trials at random before their model takes over (Optuna's n_startup_trials).
STARTUP_SAMPLERS = ("tpe", "cmaes", "gp")
SCHEDULERS = ("asha", "hyperband", "none")  # hyperband: the Ray engine's (keras-tuner has --kt-tuner hyperband)
ENGINES = ("ray", "keras-tuner")
KT_TUNERS = ("hyperband", "bayesian", "random")
GPU_MEMORY_MODES = ("limit", "growth")

# What a trial reports that may be an objective, and which way is better.
OBJECTIVE_MODES = {
    "val_mse": "min",
    "val_loss": "min",
    "val_native_mse": "min",
    "val_psnr": "max",
    "val_ssim": "max",
    "val_colorfulness": "max",  # beside an MSE, for tasks scored in RGB (checked against the space)
    "params": "min",  # accuracy/size trade-off
    "train_seconds": "min",  # accuracy/time trade-off
}


DIRECTIONS = ("min", "max")
COLORFULNESS = "val_colorfulness"  # an objective only beside an MSE, and for tasks scored in RGB


def parse_objectives(text: str | list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``val_mse:min,params:min`` -> the objectives' names and their directions. A name without ``:min`` or
    ``:max`` takes its known direction (:data:`OBJECTIVE_MODES`: lower MSE and size are better, higher PSNR and
    SSIM); the direction is given, never guessed from the name."""
    entries = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not entries:
        raise UsageError("--objectives is empty; give e.g. val_mse or val_mse:min,params:min")
    names, directions = [], []
    for entry in entries:
        name, _, direction = entry.partition(":")
        if name not in OBJECTIVE_MODES:
            raise UsageError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVE_MODES)}")
        if direction and direction not in DIRECTIONS:
            raise UsageError(f"objective {entry!r}: unknown direction {direction!r}; write {name}:min or {name}:max")
        names.append(name)
        directions.append(direction or OBJECTIVE_MODES[name])
    if len(set(names)) != len(names):
        raise UsageError(f"--objectives {','.join(entries)} repeats a metric")
    return tuple(names), tuple(directions)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``2h``, ``90m``, ``45s`` (or ``1.5h``, ``3600`` for seconds) -> seconds, positive."""
    value, unit = text.strip(), "s"
    if value and value[-1].lower() in _UNITS:
        value, unit = value[:-1], value[-1].lower()
    try:
        seconds = float(value) * _UNITS[unit]
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"--time-budget {text!r} is not a positive duration; write e.g. 2h, 90m or 45s")
    return seconds


def parse_gpus(value: float) -> float:
    """A GPU share per trial: 0 (CPU only), a fraction in (0, 1], or a whole number of GPUs."""
    if not math.isfinite(value) or value < 0 or (value > 1 and value != int(value)):
        raise UsageError(
            f"--gpus-per-trial {value} is invalid; use 0 (CPU), a fraction in (0, 1] such as 0.25, "
            "or a whole number of GPUs"
        )
    return float(value)


@dataclass(frozen=True)
class SweepOptions:
    """Everything that defines how a study is swept (the space itself is loaded from ``space``)."""

    study: str
    space: str = "quick"
    data: str | None = None  # None: the space's fixed data
    task: str | None = None  # None: the space's fixed task (or its task axis)
    samples: int | None = None  # None: the space's default number of trials
    max_epochs: int | None = None  # None: the space's max_epochs
    sampler: str = "tpe"
    startup_trials: int | None = None  # random trials before the sampler's model (None: Optuna's default)
    scheduler: str = "asha"
    objectives: tuple[str, ...] = ("val_mse",)  # "val_mse" or "val_mse:min" (the direction then moves below)
    directions: tuple[str, ...] = ()  # "min"/"max" per objective; empty: each metric's known direction
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    gpu_memory: str = "limit"  # "limit": a logical device of share x memory; "growth": allocate on demand
    concurrency: int | None = None  # None: as many trials as the cluster's resources allow
    address: str | None = None  # None: a private local Ray; "auto" or "ray://host:port" joins a cluster
    root: str = "results"
    storage: str | None = None  # Optuna storage URL; None: sqlite in the study folder
    engine: str = "ray"
    kt_tuner: str = "hyperband"
    seed: int = 0  # training: initialisation, shuffling, noise (the same for every trial of a study)
    split_seed: int = 0  # the data: which images go to train, val and test
    max_failures: int = 2  # Ray retries of a trial whose worker died (it resumes from its checkpoint)
    limit: int | None = None  # at most this many images per split (tiny runs and tests)
    precision: str | None = None  # every trial's (cae.precision.PRECISIONS); None: the space's, else float32
    # Sweep controls (the Ray engine): a wall-time budget over every run of the study (no new trial once it is
    # spent; with time_budget_hard the running ones stop too), caps that refuse a configuration before training,
    # earlier studies whose finished trials the sampler is told first, configurations to train first.
    time_budget_s: float | None = None
    time_budget_hard: bool = False
    max_params: int | None = None
    max_weights_mb: float | None = None
    warm_start: tuple[str, ...] = ()
    enqueue: str | None = None  # a YAML file of configurations (validated against the space before the study)
    # The MLflow tracking server every trial logs to (search.mlflow_log): as given until the plan checks it, then
    # (and in study.json) with its password masked; a resume logs only to a server named again.
    mlflow: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise UsageError(f"unknown sampler {self.sampler!r}; choose from {', '.join(SAMPLERS)}")
        if self.startup_trials is not None:
            if self.sampler not in STARTUP_SAMPLERS or self.engine != "ray":
                raise UsageError(f"--startup-trials applies to the Ray engine's {', '.join(STARTUP_SAMPLERS)} "
                                 f"samplers, not {self.engine} with {self.sampler}; drop it or choose one of those")
            if type(self.startup_trials) is not int or self.startup_trials < 1:  # a bool is not a count
                raise UsageError(f"--startup-trials {self.startup_trials!r} must be an integer >= 1")
        if self.scheduler not in SCHEDULERS:
            raise UsageError(f"unknown scheduler {self.scheduler!r}; choose from {', '.join(SCHEDULERS)}")
        if self.engine not in ENGINES:
            raise UsageError(f"unknown engine {self.engine!r}; choose from {', '.join(ENGINES)}")
        if self.kt_tuner not in KT_TUNERS:
            raise UsageError(f"unknown keras-tuner tuner {self.kt_tuner!r}; choose from {', '.join(KT_TUNERS)}")
        if self.gpu_memory not in GPU_MEMORY_MODES:
            raise UsageError(f"--gpu-memory {self.gpu_memory!r}; choose from {', '.join(GPU_MEMORY_MODES)}")
        parse_gpus(self.gpus_per_trial)
        names, directions = parse_objectives(list(self.objectives))
        if names != tuple(self.objectives):  # written as "name:direction": the direction goes where it belongs
            object.__setattr__(self, "objectives", names)
            object.__setattr__(self, "directions", directions if not self.directions else self.directions)
        if self.directions and (len(self.directions) != len(self.objectives)
                                or any(d not in DIRECTIONS for d in self.directions)):
            raise UsageError(f"directions {list(self.directions)} do not match --objectives "
                             f"{','.join(self.objectives)}; give min or max for each")
        if self.objectives[0] == COLORFULNESS:
            raise UsageError(f"{COLORFULNESS} alone rewards invented colour; put it beside an MSE, e.g. --objectives "
                             f"val_mse,{COLORFULNESS}")
        if self.samples is not None and self.samples < 1:
            raise UsageError(f"--samples {self.samples} must be at least 1")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise UsageError(f"--max-epochs {self.max_epochs} must be at least 1")
        if not 0 < self.cpus_per_trial <= 1024:
            raise UsageError(f"--cpus-per-trial {self.cpus_per_trial} must be positive")
        if self.concurrency is not None and self.concurrency < 1:
            raise UsageError(f"--concurrency {self.concurrency} must be at least 1")
        if self.max_failures < 0:
            raise UsageError(f"--max-failures {self.max_failures} must be >= 0")
        if self.seed < 0 or self.split_seed < 0:
            raise UsageError(f"seeds must be >= 0; got --seed {self.seed} --split-seed {self.split_seed}")
        if self.precision is not None:
            if self.precision not in PRECISIONS:
                raise UsageError(f"--precision {self.precision!r} is unknown; choose from {', '.join(PRECISIONS)}")
            if self.precision == FLOAT16 and not self.gpus_per_trial:
                raise UsageError("--precision mixed_float16 needs a GPU for each trial (--gpus-per-trial); on a CPU "
                                 "use mixed_bfloat16 or auto")
        if self.limit is not None and self.limit < 3:
            raise UsageError(f"--limit {self.limit} must be at least 3 images per split")
        if self.multi_objective and self.sampler not in MULTI_OBJECTIVE_SAMPLERS:
            raise UsageError(
                f"sampler {self.sampler!r} is single-objective; with --objectives {','.join(self.objectives)} "
                f"use one of {', '.join(MULTI_OBJECTIVE_SAMPLERS)} (nsga2 is the usual choice)"
            )
        if self.engine == "keras-tuner" and self.multi_objective:
            raise UsageError("the keras-tuner engine is single-objective; use --engine ray for several objectives")
        if self.scheduler == "hyperband" and self.engine == "keras-tuner":
            raise UsageError("--scheduler hyperband is the Ray engine's; the keras-tuner engine has its own: "
                             "--kt-tuner hyperband")
        if self.scheduler == "hyperband" and self.sampler == "grid":
            raise UsageError("--scheduler hyperband fills its brackets with new proposals and stops most of them "
                             "early, but --sampler grid trains each point once; use --scheduler asha or none with "
                             "grid, or another sampler")
        if self.time_budget_s is not None and not (isinstance(self.time_budget_s, int | float)
                                                   and math.isfinite(self.time_budget_s) and self.time_budget_s > 0):
            raise UsageError(f"--time-budget {self.time_budget_s!r} must be a positive duration")
        if self.time_budget_hard and self.time_budget_s is None:
            raise UsageError("--time-budget-hard needs --time-budget")
        if self.max_params is not None and (type(self.max_params) is not int or self.max_params < 1):
            raise UsageError(f"--max-params {self.max_params!r} must be a whole number of parameters >= 1")
        if self.max_weights_mb is not None and not (math.isfinite(self.max_weights_mb) and self.max_weights_mb > 0):
            raise UsageError(f"--max-weights-mb {self.max_weights_mb!r} must be a positive number of megabytes")
        controls = {"--time-budget": self.time_budget_s is not None, "--max-params": self.max_params is not None,
                    "--max-weights-mb": self.max_weights_mb is not None, "--warm-start": bool(self.warm_start),
                    "--enqueue": self.enqueue is not None}
        used = [name for name, given in controls.items() if given]
        if self.engine == "keras-tuner" and used:
            raise UsageError(f"{', '.join(used)}: the keras-tuner engine has no such control (its tuner proposes "
                             "on its own); use --engine ray")

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def modes(self) -> tuple[str, ...]:
        """Each objective's direction: as given, else the metric's known one."""
        return tuple(self.directions) or tuple(OBJECTIVE_MODES[o] for o in self.objectives)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["objectives"] = list(self.objectives)
        out["directions"] = list(self.modes)
        out["warm_start"] = list(self.warm_start)
        out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SweepOptions:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in known}
        kwargs["objectives"] = tuple(kwargs.get("objectives", ("val_mse",)))
        kwargs["directions"] = tuple(kwargs.get("directions", ()))  # studies before explicit directions: none
        kwargs["warm_start"] = tuple(kwargs.get("warm_start", ()))
        # Studies recorded before the two seeds were separate split their data with the training seed.
        kwargs.setdefault("split_seed", kwargs.get("seed", 0))
        return cls(**kwargs)
