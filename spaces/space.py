"""Search spaces: typed, validated descriptions of what a sweep may vary.

A :class:`Space` is a tuple of searched :class:`Param` axes plus fixed settings. It samples define-by-run
through the three ``suggest_*`` calls of Optuna's trial API (so an ``optuna.Trial``, or a thin adapter over
another tuner's hyperparameter object, drives it), and :meth:`Space.resolve` turns the sampled values into
the flat trial config that :func:`cae.config.from_flat` accepts. Everything is checked on construction;
errors name the offending entry, its value and what is allowed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, cast

from cae.config import (
    ACTIVATIONS,
    LOSSES,
    LR_SCHEDULES,
    MAX_IMAGE_SIZE,
    MIN_IMAGE_SIZE,
    UPSAMPLE_MODES,
    format_filters,
    from_flat,
    parse_filters,
)
from cae.errors import ModelConfigError, SpaceError
from cae.precision import PRECISIONS
from cae.tasks import TASKS as TASK_NAMES

# Tuning-playbook vocabulary: what we compare, what we tune so the comparison is fair, what we hold still.
ROLES = ("scientific", "nuisance", "fixed")
KINDS = ("int", "float", "categorical")
# The task axis is cae.tasks' table (colorize-rgb/-yuv/-lab differ only in the colour space of the target).
TASKS = tuple(TASK_NAMES)
MAX_DEPTH = 8  # 8 halvings already need 256px images; the image size usually limits depth further
MAX_FILTERS = 4096  # per level; beyond this a 2-core machine cannot train a single epoch
# Filled in when a space leaves them out: the embedded tiles, reconstruction, and a 10-epoch budget.
DEFAULT_FIXED: Mapping[str, Any] = {
    "task": "reconstruct",
    "data": "embedded",
    "image_size": 32,
    "max_epochs": 10,
}

Number = int | float


@dataclass(frozen=True)
class _Setting:
    """What one config key accepts: its type, inclusive (or open) bounds, or the allowed strings."""

    type: type
    low: Number = 0
    high: Number = 0
    values: tuple[str, ...] = ()
    odd: bool = False  # kernel sizes: odd, so that "same" padding is symmetric
    open: bool = False  # bounds excluded (the learning rate)
    power_of_two: bool = False  # image sizes: every down-sampling level halves them exactly
    nullable: bool = False

    def allows(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if self.type is bool:
            return isinstance(value, bool)
        if self.type is str:
            return isinstance(value, str) and bool(value) and (not self.values or value in self.values)
        if isinstance(value, bool) or not isinstance(value, (int, float) if self.type is float else int):
            return False
        if not math.isfinite(value):
            return False
        if not (self.low < value < self.high if self.open else self.low <= value <= self.high):
            return False
        if self.odd and value % 2 != 1:
            return False
        return not self.power_of_two or math.log2(value).is_integer()

    def describe(self) -> str:
        if self.values:
            return ", ".join(self.values)
        if self.type is bool:
            return "true or false"
        if self.type is str:
            return "a non-empty string"
        what = "odd integers" if self.odd else "powers of two" if self.power_of_two else "integers"
        what = "numbers" if self.type is float else what
        span = "strictly between" if self.open else "from"
        joint = "and" if self.open else "to"
        return f"{what} {span} {self.low:g} {joint} {self.high:g}" + (", or null" if self.nullable else "")


# Keys a space may search (and fix). The bounds mirror ModelConfig/TrainConfig.validate, so a bad range fails
# when the space is loaded rather than in the middle of a sweep.
AXES: Mapping[str, _Setting] = {
    "depth": _Setting(int, 1, MAX_DEPTH),
    "filters": _Setting(str),  # "32-48-64"; checked by _filters_allowed
    "convs_per_level": _Setting(int, 1, 4),
    "kernel_size": _Setting(int, 1, 11, odd=True),
    "latent_dim": _Setting(int, 1, 65536),
    "lr": _Setting(float, 0, 10, open=True),
    "lr_schedule": _Setting(str, values=LR_SCHEDULES),
    "batch_size": _Setting(int, 1, 4096),
    "loss": _Setting(str, values=LOSSES),
    "skip": _Setting(bool),
    "batch_norm": _Setting(bool),
    "activation": _Setting(str, values=ACTIVATIONS),
    "upsample": _Setting(str, values=UPSAMPLE_MODES),
    "task": _Setting(str, values=TASKS),
    "precision": _Setting(str, values=PRECISIONS),  # a nuisance: auto, float32, mixed_bfloat16, mixed_float16
}
# Keys that may only be fixed: the data and the budget are the same for every trial of a sweep.
FIXED_ONLY: Mapping[str, _Setting] = {
    "data": _Setting(str),  # embedded, cifar10, cifar10:PATH, folder:PATH (cae.data checks the form)
    "image_size": _Setting(int, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, power_of_two=True),
    "max_epochs": _Setting(int, 1, 10000),
    "noise": _Setting(float, 0, 2),  # denoise task: Gaussian std in [-1,1] units
    "patience": _Setting(int, 1, 10000, nullable=True),  # null disables early stopping
    "limit": _Setting(int, 3, 10_000_000),  # at most this many images per split (a seeded subset)
}
_SETTINGS: Mapping[str, _Setting] = {**AXES, **FIXED_ONLY}
_FILTER_COUNT = _Setting(int, 1, MAX_FILTERS)
_FILTERS_ALLOWED = f"filters per level written like 32-48-64: 1 to {MAX_DEPTH} levels of 1 to {MAX_FILTERS}"


def _filters_allowed(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        levels = parse_filters(value)
    except ModelConfigError:
        return False
    return (
        format_filters(levels) == value
        and 1 <= len(levels) <= MAX_DEPTH
        and all(map(_FILTER_COUNT.allows, levels))
    )


def _allowed(key: str, value: Any) -> bool:
    return _filters_allowed(value) if key == "filters" else _SETTINGS[key].allows(value)


def _describe(key: str) -> str:
    return _FILTERS_ALLOWED if key == "filters" else _SETTINGS[key].describe()


def _widen(key: str, value: Any) -> Any:
    """Ints given for float settings become floats (YAML writes 1 for 1.0)."""
    return float(value) if _SETTINGS[key].type is float and isinstance(value, int) else value


class TrialLike(Protocol):
    """The part of Optuna's ``Trial`` a space needs; an ``optuna.Trial`` satisfies it as is."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class Param:
    """One searched axis: an int or float range (optionally log-scaled or stepped) or a list of choices.

    ``per_level`` (filters only) makes ``choices`` the filter counts of one level: a space then samples
    ``filters_1`` .. ``filters_<depth>`` once depth is known, sorted ascending when ``increasing``.
    """

    name: str
    kind: str
    low: Number | None = None
    high: Number | None = None
    log: bool = False
    step: Number | None = None  # int ranges default to 1; float ranges without a step are continuous
    choices: tuple[Any, ...] = ()
    role: str = "scientific"
    per_level: bool = False
    increasing: bool = False

    def __post_init__(self) -> None:
        if self.name not in AXES:
            raise SpaceError(f"unknown parameter {self.name!r}; allowed: {', '.join(AXES)}")
        if self.role == "fixed":
            self._fail(
                "role fixed is for settings under fixed:; a searched parameter is scientific or nuisance"
            )
        if self.role not in ROLES:
            self._fail(f"unknown role {self.role!r}; allowed: {', '.join(ROLES)}")
        for flag in ("log", "per_level", "increasing"):
            if not isinstance(getattr(self, flag), bool):
                self._fail(f"{flag} must be true or false, got {getattr(self, flag)!r}")
        if self.kind not in KINDS:
            self._fail(f"unknown kind {self.kind!r}; allowed: {', '.join(KINDS)}")
        if self.per_level and (self.name != "filters" or self.kind != "categorical"):
            self._fail("per_level applies only to filters given as choices of per-level counts")
        if self.increasing and not self.per_level:
            self._fail("increasing applies only to per_level filters")
        if self.kind == "categorical":
            self._check_choices()
        else:
            self._check_range()

    def _fail(self, message: str) -> NoReturn:
        raise SpaceError(f"parameter {self.name!r}: {message}")

    def _check_choices(self) -> None:
        if isinstance(self.choices, str | bytes) or not isinstance(self.choices, Sequence):
            self._fail(f"choices must be a list, got {self.choices!r}")
        if not self.choices:
            self._fail("choices is empty; give at least one value")
        if self.low is not None or self.high is not None or self.step is not None or self.log:
            self._fail("choices cannot be combined with low, high, step or log")
        for choice in self.choices:
            if not isinstance(choice, str | int | float | bool):
                self._fail(f"choice {choice!r} is not a string, number or boolean")
            if self.per_level and not _FILTER_COUNT.allows(choice):
                self._fail(f"per-level count {choice!r} is not allowed; allowed: {_FILTER_COUNT.describe()}")
            if not self.per_level and not _allowed(self.name, choice):
                self._fail(f"choice {choice!r} is not allowed; allowed: {_describe(self.name)}")
        choices = tuple(_widen(self.name, c) for c in self.choices)
        duplicates = sorted({repr(c) for c in choices if choices.count(c) > 1})
        if duplicates:
            self._fail(f"choices must be distinct, but {', '.join(duplicates)} appears more than once")
        object.__setattr__(self, "choices", choices)

    def _check_range(self) -> None:
        setting = AXES[self.name]
        if self.choices:
            self._fail("low/high cannot be combined with choices")
        if setting.type not in (int, float):
            self._fail(f"{self.name} takes choices, not a range; allowed: {_describe(self.name)}")
        bounds = {"low": self.low, "high": self.high, **({} if self.step is None else {"step": self.step})}
        for bound, value in bounds.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                self._fail(f"{bound} must be a number, got {value!r}")
            if self.kind == "int" and not isinstance(value, int):
                self._fail(f"{bound} must be an integer for an int range, got {value!r}")
        if self.kind == "float" and setting.type is int:
            self._fail(f"{self.name} takes integers; write low and high as integers")
        if self.kind == "int" and setting.type is float:
            self._fail(f"{self.name} is continuous; write low and high as floats (1.0) or add type: float")
        low, high = cast(Number, self.low), cast(Number, self.high)
        step = 1 if self.kind == "int" and self.step is None else self.step
        if low > high:
            self._fail(f"low <= high must hold, got low={low}, high={high}")
        if self.log and low <= 0:
            self._fail(f"a log scale needs low > 0, got low={low}")
        if step is not None:
            self._check_step(low, high, step)
        for bound, value in (("low", low), ("high", high)):
            if not setting.allows(value if setting.type is int else float(value)):
                self._fail(f"{bound} {value!r} is out of range; allowed: {setting.describe()}")
        if setting.odd and low != high and cast(int, step) % 2:
            self._fail(
                f"step {step} would give even sizes; use an even step, e.g. {{low: 3, high: 7, step: 2}}"
            )
        if self.kind == "float":
            object.__setattr__(self, "low", float(low))
            object.__setattr__(self, "high", float(high))
        object.__setattr__(self, "step", float(step) if self.kind == "float" and step is not None else step)

    def _check_step(self, low: Number, high: Number, step: Number) -> None:
        if step <= 0:
            self._fail(f"step must be > 0, got {step}")
        if self.log and step != 1:
            self._fail(f"log and step cannot be combined (got step={step}); drop one")
        intervals = (high - low) / step
        if abs(intervals - round(intervals)) > 1e-9:
            self._fail(f"high - low must be a multiple of step, got low={low}, high={high}, step={step}")

    def suggest(self, trial: TrialLike) -> Any:
        """Sample this axis from ``trial`` with exactly Optuna's ``suggest_*`` calls and keywords."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, self.choices)
        low, high = cast(Number, self.low), cast(Number, self.high)
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(low), int(high), step=int(cast(int, self.step)), log=self.log
            )
        return trial.suggest_float(self.name, float(low), float(high), step=self.step, log=self.log)

    def grid_values(self) -> list[Any]:
        """Every value of this axis; a float range needs a step to be finite."""
        if self.kind == "categorical":
            return list(self.choices)
        low, high, step = cast(Number, self.low), cast(Number, self.high), self.step
        if step is None:
            self._fail(f"float range [{low:g}, {high:g}] is not finite; give choices or a step")
        if self.kind == "int":
            return list(range(int(low), int(high) + 1, int(cast(int, step))))
        count = round((high - low) / cast(float, step)) + 1
        return [round(low + i * cast(float, step), 12) for i in range(count)]

    def distribution(self) -> Any:
        """This axis as the Optuna distribution its ``suggest`` call draws from (for a per-level axis: one
        level's counts)."""
        import optuna.distributions as d

        if self.kind == "categorical":
            return d.CategoricalDistribution(self.choices)
        low, high = cast(Number, self.low), cast(Number, self.high)
        if self.kind == "int":
            return d.IntDistribution(int(low), int(high), log=self.log, step=int(cast(int, self.step)))
        return d.FloatDistribution(float(low), float(high), log=self.log, step=self.step)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this axis can draw (a choice, or a number on its range and step)."""
        if self.kind == "categorical":
            return any(type(value) is type(choice) and value == choice for choice in self.choices) or any(
                isinstance(value, int | float) and not isinstance(value, bool) and not isinstance(choice, bool)
                and isinstance(choice, int | float) and float(value) == float(choice) for choice in self.choices)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return False
        if self.kind == "int" and float(value) != int(value):
            return False
        low, high = float(cast(Number, self.low)), float(cast(Number, self.high))
        tolerance = 1e-12 * max(1.0, abs(low), abs(high))
        if not low - tolerance <= float(value) <= high + tolerance:
            return False
        if self.step is None or self.log:
            return True
        steps = (float(value) - low) / float(self.step)
        return abs(steps - round(steps)) <= 1e-9

    def to_dict(self) -> dict[str, Any]:
        """The space-file form of this axis (JSON-friendly)."""
        if self.per_level:
            return {"per_level": list(self.choices), "increasing": self.increasing, "role": self.role}
        if self.kind == "categorical":
            return {"choices": list(self.choices), "role": self.role}
        entry = {"type": self.kind, "low": self.low, "high": self.high, "log": self.log, "step": self.step}
        return {**{k: v for k, v in entry.items() if v is not None}, "role": self.role}


class _Axis(Protocol):
    """One independent dimension of a space as the sampler sees it: a searched :class:`Param` on its own, or the
    per-level filters together with the depth they depend on (:class:`_FilterLevels`)."""

    @property
    def resolved(self) -> str:
        """The flat config key it gives."""
        ...

    def suggest(self, trial: TrialLike, grid: bool) -> dict[str, Any]:
        """Its raw values, drawn with Optuna's ``suggest_*`` calls (``grid``: as the grid sampler needs them)."""
        ...

    def grid(self) -> list[Any]:
        """Every value of its flat key (a :class:`SpaceError` when not finite)."""
        ...

    def size(self, grid: bool) -> int:
        """How many different sets of raw values it samples (a :class:`SpaceError` when not finite)."""
        ...

    def take(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Remove its raw values from ``raw``; its flat key and value ({} when ``raw`` has none of them)."""
        ...

    def distributions(self) -> dict[str, Any]:
        """Each raw key it may draw and its Optuna distribution."""
        ...

    def raw_from(self, flat: Mapping[str, Any]) -> dict[str, Any] | None:
        """The raw values that give a flat config's value of it, or None when it cannot give that value."""
        ...


@dataclass(frozen=True)
class _Single:
    """A searched :class:`Param` on its own: its raw value is its flat value."""

    param: Param

    @property
    def resolved(self) -> str:
        return self.param.name

    def suggest(self, trial: TrialLike, grid: bool) -> dict[str, Any]:
        return {self.param.name: self.param.suggest(trial)}

    def grid(self) -> list[Any]:
        return self.param.grid_values()

    def size(self, grid: bool) -> int:
        return len(self.param.grid_values())

    def take(self, raw: dict[str, Any]) -> dict[str, Any]:
        return {self.param.name: raw.pop(self.param.name)} if self.param.name in raw else {}

    def distributions(self) -> dict[str, Any]:
        return {self.param.name: self.param.distribution()}

    def raw_from(self, flat: Mapping[str, Any]) -> dict[str, Any] | None:
        value: Any = flat.get(self.param.name)
        if not self.param.contains(value):
            return None
        if self.param.kind == "categorical":  # the choice itself (a number read back from a table: 16.0 for 16)
            value = next(c for c in self.param.choices
                         if isinstance(c, bool) == isinstance(value, bool) and _same(c, value))
        elif self.param.kind == "int":
            value = int(value)
        else:
            value = float(value)
        return {self.param.name: value}


@dataclass(frozen=True)
class _FilterLevels:
    """Per-level filters and their depth, one axis: ``depth`` (searched, or fixed) then ``filters_1`` ..
    ``filters_<depth>``, conditional on it; for the grid sampler, instead, one ``filters`` choice among every
    list ("a-b-c", ascending lists only when ``increasing``)."""

    levels: Param  # the filters axis, per_level
    depth: Param | None  # the depth axis; None when depth is fixed
    fixed_depth: int | None
    space: str  # the space's name, for messages

    @property
    def resolved(self) -> str:
        return "filters"

    def depths(self) -> list[int]:
        return self.depth.grid_values() if self.depth is not None else [cast(int, self.fixed_depth)]

    def grid(self) -> list[str]:
        lists: list[str] = []
        for depth in self.depths():
            if self.levels.increasing:
                combos: Iterator[tuple[Any, ...]] = itertools.combinations_with_replacement(
                    sorted(self.levels.choices), depth
                )
            else:
                combos = itertools.product(self.levels.choices, repeat=depth)
            lists.extend(format_filters(c) for c in combos)
        return lists

    def size(self, grid: bool) -> int:
        if grid:
            return len(self.grid())
        return sum(len(self.levels.choices) ** depth for depth in self.depths())

    def suggest(self, trial: TrialLike, grid: bool) -> dict[str, Any]:
        if grid:
            return {"filters": trial.suggest_categorical("filters", self.grid())}
        values: dict[str, Any] = {}
        if self.depth is not None:
            values["depth"] = depth = self.depth.suggest(trial)
        else:
            depth = cast(int, self.fixed_depth)
        for level in range(1, depth + 1):
            values[f"filters_{level}"] = trial.suggest_categorical(f"filters_{level}", self.levels.choices)
        return values

    def take(self, raw: dict[str, Any]) -> dict[str, Any]:
        if "filters" in raw:  # sampled for the grid: the list itself
            raw.pop("depth", None)
            return {"filters": raw.pop("filters")}
        depth = raw.pop("depth", self.fixed_depth)
        if isinstance(depth, bool) or not isinstance(depth, int):
            raise SpaceError(f"space {self.space!r}: sampled values lack an integer depth (got {depth!r})")
        missing = [f"filters_{i}" for i in range(1, depth + 1) if f"filters_{i}" not in raw]
        if missing:
            raise SpaceError(f"space {self.space!r}: depth {depth} but no value for {', '.join(missing)}")
        counts = [raw.pop(f"filters_{i}") for i in range(1, depth + 1)]
        return {"filters": format_filters(sorted(counts) if self.levels.increasing else counts)}

    def distributions(self) -> dict[str, Any]:
        """Every raw key it may draw (depth when searched, filters_1 .. filters_<deepest>) and its distribution."""
        out: dict[str, Any] = {} if self.depth is None else {"depth": self.depth.distribution()}
        for level in range(1, max(self.depths()) + 1):
            out[f"filters_{level}"] = self.levels.distribution()
        return out

    def raw_from(self, flat: Mapping[str, Any]) -> dict[str, Any] | None:
        """The raw values that give ``flat``'s filters list, or None when this axis cannot give it."""
        try:
            counts = list(parse_filters(str(flat.get("filters"))))
        except ModelConfigError:
            return None
        if len(counts) not in self.depths() or any(not self.levels.contains(c) for c in counts):
            return None
        if self.levels.increasing and counts != sorted(counts):
            return None
        raw: dict[str, Any] = {} if self.depth is None else {"depth": len(counts)}
        raw.update({f"filters_{i}": count for i, count in enumerate(counts, start=1)})
        return raw


def _same(a: Any, b: Any) -> bool:
    """Equal settings, a number read back from a table (0.003, 16.0) equal to the one written (3.0e-3, 16)."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return bool(a == b) if not isinstance(a, str) else str(a) == str(b)


class _FrozenMapping(Mapping[str, Any]):
    """A read-only, hashable, picklable mapping (Ray pickles spaces; a ``MappingProxyType`` cannot be)."""

    def __init__(self, items: Mapping[str, Any]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._items.items())))

    def __repr__(self) -> str:
        return repr(self._items)


@dataclass(frozen=True)
class Space:
    """A search space: searched axes, fixed settings and a default trial count, validated as a whole.

    Depth is given one of two ways: implied by explicit ``filters`` choices (``"16-32"``, ``"32-48-64"``), or
    as a ``depth`` axis (or fixed depth) with ``per_level`` filters. ``fixed`` gets the defaults of
    :data:`DEFAULT_FIXED` for the keys the space neither fixes nor searches.
    """

    name: str
    description: str = ""
    path: str | None = None
    params: tuple[Param, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    samples: int = 10  # default number of trials; the command line may override it

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpaceError(f"space name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.description, str):
            raise SpaceError(f"description must be a string, got {self.description!r}")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise SpaceError(f"samples must be a positive integer (trials per sweep), got {self.samples!r}")
        params = tuple(self.params)
        if not all(isinstance(p, Param) for p in params):
            raise SpaceError(f"params must be Param objects, got {params!r}")
        names = [p.name for p in params]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise SpaceError(f"parameter(s) {repeated} declared more than once")
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "fixed", _FrozenMapping(self._checked_fixed()))
        self._check_depth()

    def _checked_fixed(self) -> dict[str, Any]:
        if not isinstance(self.fixed, Mapping):
            raise SpaceError(f"fixed must be a mapping of setting to value, got {self.fixed!r}")
        searched = {p.name for p in self.params}
        fixed = dict(self.fixed)
        for key, value in fixed.items():
            if key not in _SETTINGS:
                raise SpaceError(f"unknown fixed setting {key!r}; allowed: {', '.join(_SETTINGS)}")
            if key in searched:
                raise SpaceError(f"{key} is both searched (params) and fixed; keep one")
            if not _allowed(key, value):
                raise SpaceError(f"fixed {key} {value!r} is not allowed; allowed: {_describe(key)}")
            fixed[key] = _widen(key, value)
        return {**{k: v for k, v in DEFAULT_FIXED.items() if k not in searched}, **fixed}

    def _check_depth(self) -> None:
        """Depth comes from exactly one place, and the deepest model must fit the image size."""
        filters, depth = self._param("filters"), self._param("depth")
        per_level = filters is not None and filters.per_level
        depth_given = "depth" in self.fixed or depth is not None
        if depth_given and not per_level:
            raise SpaceError(
                "depth is implied by the filters (e.g. 32-48-64 has depth 3); drop depth, or search "
                "filters: {per_level: [16, 32, 64]} together with depth: {low: 2, high: 4}"
            )
        if per_level and not depth_given:
            raise SpaceError("per_level filters need a depth: search it (depth: {low: 2, high: 4}) or fix it")
        if filters is not None and depth is not None and filters.role != depth.role:
            raise SpaceError(
                f"depth (role {depth.role}) and per_level filters (role {filters.role}) are one axis; "
                "give them the same role"
            )
        size = self.fixed["image_size"]
        levels = {entry: len(parse_filters(value)) for entry, value in self._filter_lists()}
        if depth is not None:
            levels.update({f"parameter 'depth' value {d}": d for d in depth.grid_values()})
        elif "depth" in self.fixed:
            levels["fixed depth"] = self.fixed["depth"]
        for entry, count in levels.items():
            if 2**count > size:
                raise SpaceError(
                    f"{entry}: {count} levels need images of at least {2**count}px, but image_size is "
                    f"{size}; allowed: at most {int(math.log2(size))} levels"
                )

    def _filter_lists(self) -> Iterator[tuple[str, str]]:
        """(entry, "a-b-c") for every explicit filters list: fixed, or each choice of the filters axis."""
        filters = self._param("filters")
        if filters is not None and not filters.per_level:
            yield from ((f"parameter 'filters' choice {c!r}", c) for c in filters.choices)
        if "filters" in self.fixed:
            yield "fixed filters", self.fixed["filters"]

    def _param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def _axes(self) -> tuple[_Axis, ...]:
        """The space's independent axes, in the order they are sampled: each searched parameter on its own, then
        per-level filters with their depth as one axis (last, so that adding it changed no other draw)."""
        filters, depth = self._param("filters"), self._param("depth")
        if filters is None or not filters.per_level:
            return tuple(_Single(p) for p in self.params)
        singles = tuple(_Single(p) for p in self.params if p.name not in ("depth", "filters"))
        return (*singles, _FilterLevels(filters, depth, self.fixed.get("depth"), self.name))

    def size(self, *, grid: bool = False) -> int | None:
        """How many different sets of raw values :meth:`sample` can return (``grid``: as it samples for the grid
        sampler); None when an axis is continuous."""
        try:
            return math.prod(axis.size(grid) for axis in self._axes())
        except SpaceError:
            return None

    def sample(self, trial: TrialLike, *, grid: bool = False) -> dict[str, Any]:
        """Sample one configuration define-by-run and return the raw values (feed them to :meth:`resolve`).

        Per-level filters are conditional: ``filters_3`` is suggested only when depth >= 3. With ``grid``
        they are suggested instead as one ``filters`` choice among :meth:`grid`'s lists (and depth is
        implied), which is what Optuna's ``GridSampler`` expects.
        """
        values: dict[str, Any] = {}
        for axis in self._axes():
            values.update(axis.suggest(trial, grid))
        return values

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Raw sampled values + fixed settings -> the flat trial config, checked by ``cae.config.from_flat``.

        Per-level filters are joined ("32-48-64", sorted first when ``increasing``) and ``depth`` is derived
        from the filters. Raises :class:`SpaceError` for values this space does not sample or for a
        combination the model cannot be built with.
        """
        raw, axes = dict(params), self._axes()
        taken: dict[str, Any] = {}
        for axis in axes:
            taken.update(axis.take(raw))
        expected = {axis.resolved for axis in axes}
        unknown, missing = sorted(raw), sorted(expected - set(taken))
        if unknown or missing:
            raise SpaceError(
                f"space {self.name!r}: sampled values do not match the space (unknown: {unknown}, missing: "
                f"{missing}); it samples {sorted(expected)}"
            )
        flat = {**self.fixed, **taken}
        if "filters" in flat:
            flat["depth"] = len(parse_filters(flat["filters"]))
        try:
            from_flat(flat)
        except ModelConfigError as exc:
            raise SpaceError(f"space {self.name!r}: configuration {flat} is impossible: {exc}") from None
        return flat

    def distributions(self) -> dict[str, Any]:
        """Every raw key the space may draw (not for the grid sampler) and its Optuna distribution."""
        out: dict[str, Any] = {}
        for axis in self._axes():
            out.update(axis.distributions())
        return out

    def raw_from_flat(
        self, flat: Mapping[str, Any], settings: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The raw values this space would draw to give a trial's flat config (another study's row, say), or None
        when the space cannot give it: a value off an axis, or a setting that differs (the space's fixed ones,
        with ``settings`` over them: a study's command-line overrides)."""
        raw: dict[str, Any] = {}
        for axis in self._axes():
            part = axis.raw_from(flat)
            if part is None:
                return None
            raw.update(part)
        try:
            resolved = {**self.resolve(raw), **(settings or {})}
        except SpaceError:
            return None
        same = all(key not in flat or _same(flat[key], value) for key, value in resolved.items()
                   if key not in ("seed", "split_seed", "data", "limit"))
        return raw if same else None

    def check_values(self, values: Mapping[str, Any], where: str) -> None:
        """Refuse (a :class:`SpaceError` naming ``where``, the key and what is allowed) values that are not raw
        keys of this space or lie off their axis; a partial set is fine (the sampler draws the rest)."""
        known = self.distributions()
        params = {p.name: p for p in self.params}
        for key, value in values.items():
            if key not in known:
                raise SpaceError(f"{where}: {key!r} is not searched by space {self.name!r}; it searches "
                                 f"{', '.join(sorted(known))}")
            axis = params.get(key) or params["filters"]  # filters_<i>: one level of the per-level axis
            if not axis.contains(value):
                allowed = f"one of {list(axis.choices)}" if axis.kind == "categorical" else (
                    f"{axis.kind} in [{axis.low}, {axis.high}]" + (f" in steps of {axis.step}" if axis.step else ""))
                raise SpaceError(f"{where}: {key} {value!r} is outside the space; allowed: {allowed}")

    def roles(self) -> dict[str, str]:
        """Flat config key -> role; depth shares the role of the filters axis, fixed keys are "fixed"."""
        roles = {key: "fixed" for key in self.fixed}
        roles.update({p.name: p.role for p in self.params})
        filters = self._param("filters")
        if filters is not None and "depth" not in self.fixed:
            roles["depth"] = filters.role
        elif "filters" in self.fixed:
            roles["depth"] = "fixed"
        return roles

    def grid(self) -> dict[str, list[Any]]:
        """Every searched key and its finite list of values, for Optuna's ``GridSampler``.

        Per-level filters become explicit "a-b-c" lists under ``filters`` (depth is implied); sample with
        ``sample(trial, grid=True)`` so the trial suggests the same keys. A float range needs a step.
        """
        return {axis.resolved: axis.grid() for axis in self._axes()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description in space-file form (``spaces.space_from_dict`` reads it back)."""
        return {
            "name": self.name,
            "description": self.description,
            "path": self.path,
            "samples": self.samples,
            "fixed": dict(self.fixed),
            "params": {p.name: p.to_dict() for p in self.params},
        }
