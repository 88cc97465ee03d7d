"""What a benchmark is: a declared, validated definition, and the registry of them.

A :class:`BenchmarkDefinition` names the dataset, the task(s), the search space, the metric, the budget (in
the benchmark's own unit) and the number of seeds, and the function that runs it. It checks itself when built
(``__post_init__``), so a wrong definition fails at import, not an hour into a run. :meth:`plan` turns the
command line's :class:`RunSettings` into a :class:`RunPlan` (every value resolved and checked; nothing is
written or trained before), which the runner receives.

Each benchmark is a small factory below; :data:`REGISTRY` maps names to definitions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from cae import plain_yaml
from cae import precision as precisions
from cae.data import parse_spec
from cae.errors import BenchmarkError, CaesweepError, UsageError
from results import DEFAULT_ROOT
from spaces import TASKS, Space, load_space, space_from_dict

SPACES_DIR = Path(__file__).resolve().parent / "spaces"
KINDS = ("reproduction", "search", "performance")
MODES = ("min", "max")
AUTO_DATA = "auto"  # CIFAR-10 when its archive is present, else the embedded tiles
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
# RunSettings fields that are not size or budget knobs: every benchmark accepts them.
_ALWAYS = ("root",)


@dataclass(frozen=True)
class RunSettings:
    """What the command line asked for; ``None`` means the benchmark's default."""

    root: Path = DEFAULT_ROOT
    data: str | None = None
    budget: int | None = None
    seeds: int | None = None
    limit: int | None = None
    image_size: int | None = None
    table: Path | None = None
    concurrency: int | None = None
    trials: int | None = None  # scale: trials per study (the benchmark's budget)
    workers: int | None = None  # scale, engines: trials at once (default: the benchmark's own list)
    time_scale: float | None = None  # engines: wall seconds per simulated second (default: a simulated clock)
    profile: str | None = None  # a benchmark's named size (e.g. "published": the full grid, for a GPU)
    precision: str | None = None  # the trainings' precision (cae.precision.PRECISIONS); None: the space's, float32


@dataclass(frozen=True)
class RunPlan:
    """One run of one benchmark, every setting resolved and checked."""

    definition: BenchmarkDefinition
    folder: Path  # <root>/benchmarks/<name>: the benchmark's studies and result files
    data: str
    data_note: str  # which data was used and why, for the result
    budget: int
    seeds: int
    image_size: int
    limit: int | None
    table: Path | None
    concurrency: int | None
    workers: int | None = None
    time_scale: float | None = None
    profile: str = "default"
    precision: str | None = None  # fixed in the benchmark's space(s) when given

    @property
    def name(self) -> str:
        return self.definition.name


@dataclass(frozen=True)
class Profile:
    """A named size of a benchmark: the space, budget, image size and images per split that replace the
    default's (e.g. the full published grid, for a GPU), and why it exists."""

    space: Space
    budget: int
    image_size: int
    limit: int | None
    note: str


Runner = Callable[[RunPlan], dict[str, Any]]


@dataclass(frozen=True)
class BenchmarkDefinition:
    """One benchmark: what it runs on, what it measures, with which budget and how many seeds."""

    name: str
    description: str
    kind: str  # reproduction (of published numbers), search (engine comparison) or performance (the suite's)
    data: str  # a dataset spec, or "auto"
    tasks: tuple[str, ...]  # the task, or the tasks it compares
    space: Space  # what varies (for the performance benchmark: the space of the sweeps it times)
    metric: str  # the number the benchmark is judged by
    mode: str  # "min" or "max": which way the metric is better
    budget: int  # default budget, in budget_unit
    budget_unit: str
    min_budget: int  # below this not even one trial can run
    seeds: int  # default number of repeats (seeds 0..seeds-1)
    image_size: int
    runner: Runner
    limit: int | None = None  # default images per split (None: all)
    accepts: tuple[str, ...] = ("data", "budget", "seeds", "limit", "image_size", "concurrency")
    default_profile: str = "default"  # the name of the size the fields above describe
    profiles: Mapping[str, Profile] = field(default_factory=dict)  # other sizes, chosen with --profile

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise BenchmarkError(f"benchmark name {self.name!r}: use lowercase letters, digits and '-'")
        if self.kind not in KINDS:
            raise BenchmarkError(f"benchmark {self.name}: kind {self.kind!r}; allowed: {', '.join(KINDS)}")
        if self.data != AUTO_DATA:
            _check(self.name, parse_spec, self.data)
        if not isinstance(self.space, Space):
            raise BenchmarkError(f"benchmark {self.name}: space must be a spaces.Space, got {self.space!r}")
        unknown = [t for t in self.tasks if t not in TASKS]
        if not self.tasks or unknown:
            raise BenchmarkError(f"benchmark {self.name}: tasks {list(self.tasks)}; allowed: {', '.join(TASKS)}")
        if set(self.tasks) != set(space_tasks(self.space)):
            raise BenchmarkError(
                f"benchmark {self.name}: tasks {list(self.tasks)} differ from its space's {space_tasks(self.space)}"
            )
        if not self.metric or self.mode not in MODES:
            raise BenchmarkError(f"benchmark {self.name}: metric {self.metric!r} with mode {self.mode!r}; mode is "
                                 "min or max")
        for label, value in (("min_budget", self.min_budget), ("seeds", self.seeds)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BenchmarkError(f"benchmark {self.name}: {label} {value!r} must be a positive integer")
        if not isinstance(self.budget, int) or self.budget < self.min_budget:
            raise BenchmarkError(f"benchmark {self.name}: budget {self.budget!r} is below its min_budget "
                                 f"{self.min_budget}")
        known = {f.name for f in fields(RunSettings)}
        if not set(self.accepts) <= known:
            raise BenchmarkError(f"benchmark {self.name}: accepts {sorted(set(self.accepts) - known)}, which are "
                                 f"not settings; known: {', '.join(sorted(known))}")
        _check(self.name, lambda: derived_space(self.space, image_size=self.image_size, limit=self.limit))
        if not callable(self.runner):
            raise BenchmarkError(f"benchmark {self.name}: runner {self.runner!r} is not callable")
        if self.default_profile in self.profiles:
            raise BenchmarkError(f"benchmark {self.name}: profile {self.default_profile!r} is both the default and "
                                 "another size")
        for name, profile in self.profiles.items():
            if not isinstance(profile, Profile):
                raise BenchmarkError(f"benchmark {self.name}: profile {name!r} is not a Profile")
            self.with_profile(name)  # each profile is a valid definition too

    def with_profile(self, name: str | None) -> BenchmarkDefinition:
        """The definition at the named size (the default's name or ``None``: itself)."""
        if name is None or name == self.default_profile:
            return self
        if name not in self.profiles:
            names = [self.default_profile, *self.profiles]
            raise BenchmarkError(f"--profile {name}: benchmark {self.name} has the profiles {', '.join(names)}")
        p = self.profiles[name]
        return replace(self, space=p.space, budget=p.budget, image_size=p.image_size, limit=p.limit,
                       default_profile=name, profiles={})

    def folder(self, root: Path) -> Path:
        """``ROOT/benchmarks/NAME``, absolute: trial processes write into it from working folders of their own."""
        return Path(root).absolute() / "benchmarks" / self.name

    def plan(self, settings: RunSettings) -> RunPlan:
        """Resolve and check the command line's settings (nothing is written or trained)."""
        if settings.profile is not None and "profile" in self.accepts:
            sized = self.with_profile(settings.profile)
            if sized is not self:
                return sized.plan(replace(settings, profile=None))
        given = [f.name for f in fields(RunSettings) if getattr(settings, f.name) is not None]
        refused = [name for name in given if name not in (*self.accepts, *_ALWAYS)]
        if refused:
            flags = ", ".join("--" + name.replace("_", "-") for name in refused)
            raise UsageError(f"benchmark {self.name} does not take {flags}; it takes "
                             f"{', '.join('--' + a.replace('_', '-') for a in self.accepts)}")
        for flag, value in (("trials", settings.trials), ("workers", settings.workers)):
            if value is not None and value < 1:
                raise BenchmarkError(f"--{flag} {value} must be at least 1")
        if settings.time_scale is not None and not (math.isfinite(settings.time_scale) and settings.time_scale > 0):
            raise BenchmarkError(f"--time-scale {settings.time_scale} must be a positive number (e.g. 0.02: each "
                                 "replayed epoch sleeps 1/50 of its recorded seconds)")
        budget = self.budget if settings.budget is None else settings.budget
        budget = budget if settings.trials is None else settings.trials  # --trials is scale's budget
        if budget < self.min_budget:
            raise BenchmarkError(
                f"--budget {budget} is too small for {self.name}: one trial needs at least {self.min_budget} "
                f"{self.budget_unit}"
            )
        seeds = self.seeds if settings.seeds is None else settings.seeds
        if seeds < 1:
            raise BenchmarkError(f"--seeds {seeds} must be at least 1")
        if settings.limit is not None and settings.limit < 3:
            raise BenchmarkError(f"--limit {settings.limit} must be at least 3 images per split")
        if settings.concurrency is not None and settings.concurrency < 1:
            raise BenchmarkError(f"--concurrency {settings.concurrency} must be at least 1")
        if settings.precision is not None:  # unknown, or mixed_float16 without a GPU: refused before anything runs
            precisions.resolve(settings.precision, precisions.detect())
        data, note = resolve_data(settings.data or self.data)
        image_size = settings.image_size or self.image_size
        limit = settings.limit if settings.limit is not None else self.limit
        derived_space(self.space, image_size=image_size, limit=limit, data=data)  # e.g. too deep for the size
        return RunPlan(
            definition=self, folder=self.folder(settings.root), data=data, data_note=note, budget=budget,
            seeds=seeds, image_size=image_size, limit=limit, table=settings.table, concurrency=settings.concurrency,
            workers=settings.workers, time_scale=settings.time_scale, profile=self.default_profile,
            precision=settings.precision,
        )

    def summary(self) -> dict[str, Any]:
        """The definition as JSON-friendly data (written into every result)."""
        return {
            "name": self.name, "description": self.description, "kind": self.kind, "data": self.data,
            "tasks": list(self.tasks), "space": self.space.to_dict() | {"path": None}, "metric": self.metric,
            "mode": self.mode, "budget": self.budget, "budget_unit": self.budget_unit,
            "min_budget": self.min_budget, "seeds": self.seeds, "image_size": self.image_size, "limit": self.limit,
            "profile": self.default_profile, "other_profiles": {name: p.note for name, p in self.profiles.items()},
        }


def _check(name: str, function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except CaesweepError as exc:
        raise BenchmarkError(f"benchmark {name}: {exc}") from None


def space_tasks(space: Space) -> list[str]:
    """The tasks a space covers: its task axis's choices, or its fixed task."""
    axis = next((p for p in space.params if p.name == "task"), None)
    return list(axis.choices) if axis is not None else [str(space.fixed["task"])]


def derived_space(space: Space, **fixed: Any) -> Space:
    """The same space with some fixed settings replaced (``None`` values leave a setting as it is)."""
    changes = {k: v for k, v in fixed.items() if v is not None}
    data = space.to_dict() | {"path": None}
    data["fixed"] = {**data["fixed"], **changes}
    return space_from_dict(data)


def write_space(space: Space, path: Path) -> Path:
    """Write a space as a YAML space file (what ``search run --space FILE`` reads)."""
    data = space.to_dict()
    document = {"description": data["description"], "samples": data["samples"], "fixed": data["fixed"],
                "params": data["params"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def resolve_data(spec: str) -> tuple[str, str]:
    """``auto`` -> CIFAR-10 if its archive is found, else the embedded tiles; returns (spec, a sentence)."""
    if spec != AUTO_DATA:
        parse_spec(spec)
        return spec, f"data: {spec} (as asked)"
    from cae.datasets import cifar

    try:
        where = cifar.locate(None)
    except CaesweepError:
        return "embedded", ("data: embedded tiles (CIFAR-10 not found in Keras's cache; the published numbers are "
                            "on CIFAR-10, so compare trends, not absolute values)")
    return "cifar10", f"data: CIFAR-10 from {where}"


# -- the registry ---------------------------------------------------------------------------------------------


def _seed_architectures() -> BenchmarkDefinition:
    cpu = load_space(str(SPACES_DIR / "architectures-cpu.yaml"))
    return BenchmarkDefinition(
        name="seed-architectures",
        description="The published CAE architecture comparison as a grid (filters, kernel, latent size, learning "
        "rate): test MSE, PSNR, SSIM, params and seconds per epoch; each filter list's best configuration over 3 "
        "training seeds; the published findings judged HOLDS / DOES NOT HOLD / NOT DISTINGUISHABLE, also against "
        "PCA at the same latent size. Reference: test MSE 0.0179 for the baseline.",
        kind="reproduction",
        data=AUTO_DATA,
        tasks=("reconstruct",),
        space=cpu,
        metric="test_mse",
        mode="min",
        budget=int(cpu.fixed["max_epochs"]),
        budget_unit="epochs per trial",
        min_budget=1,
        seeds=3,
        image_size=int(cpu.fixed["image_size"]),
        limit=cpu.fixed.get("limit"),
        runner=_lazy("seed_architectures"),
        accepts=("data", "budget", "seeds", "limit", "image_size", "concurrency", "profile", "precision"),
        default_profile="cpu",
        profiles={"published": Profile(
            space=load_space(str(SPACES_DIR / "architectures.yaml")), budget=15, image_size=32, limit=None,
            note="the full published grid (4 filter lists x kernel 3, 5 x latent 64, 128, 256 x learning rate 1e-3, "
                 "1e-4 = 48 configurations, 32x32, 15 epochs): hours on 2 CPU cores, for a GPU")},
    )


def _seed_colorization() -> BenchmarkDefinition:
    cpu = load_space(str(SPACES_DIR / "colorization-cpu.yaml"))
    return BenchmarkDefinition(
        name="seed-colorization",
        description="Colorization gray->RGB vs Y->UV vs L->ab with the same architecture, scored in each native "
        "space (published: RGB 0.006633, YUV 0.003041) and in RGB with the true luminance over 3 training seeds, "
        "next to the trivial baselines: does YUV colorize better (HOLDS / DOES NOT HOLD / NOT DISTINGUISHABLE)?",
        kind="reproduction",
        data=AUTO_DATA,
        tasks=("colorize-rgb", "colorize-yuv", "colorize-lab"),
        space=cpu,
        metric="test_mse",
        mode="min",
        budget=int(cpu.fixed["max_epochs"]),
        budget_unit="epochs per trial",
        min_budget=1,
        seeds=3,
        image_size=int(cpu.fixed["image_size"]),
        limit=cpu.fixed.get("limit"),
        runner=_lazy("seed_colorization"),
        accepts=("data", "budget", "seeds", "limit", "image_size", "concurrency", "profile", "precision"),
        default_profile="cpu",
        profiles={"published": Profile(
            space=load_space(str(SPACES_DIR / "colorization.yaml")), budget=15, image_size=32, limit=None,
            note="the published setting (32x32, 15 epochs, learning rates 3e-4, 1e-3, 3e-3 without decay, all "
                 "images): about 3 hours on 2 CPU cores, for a GPU")},
    )


def _engines() -> BenchmarkDefinition:
    space = load_space(str(SPACES_DIR / "tabular.yaml"))
    return BenchmarkDefinition(
        name="engines",
        description="Search strategies (random, TPE, CMA-ES, TPE+ASHA, keras-tuner Hyperband, TPE+Hyperband on Ray, "
        "multi-objective TPE+ASHA) on the same space and compute budget, replayed against a tabular benchmark: "
        "best-so-far val MSE vs epochs spent.",
        kind="search",
        data=str(space.fixed["data"]),
        tasks=(str(space.fixed["task"]),),
        space=space,
        metric="val_mse",
        mode="min",
        budget=180,  # 10 full trials' worth of the 36-configuration table's 18-epoch curves
        budget_unit="epochs of compute per run",
        min_budget=int(space.fixed["max_epochs"]),
        seeds=5,
        image_size=int(space.fixed["image_size"]),
        limit=space.fixed.get("limit"),
        runner=_lazy("engines"),
        accepts=("data", "budget", "seeds", "table", "workers", "time_scale"),
    )


def _overhead() -> BenchmarkDefinition:
    from benchmarks import sweep_overhead

    space = space_from_dict({**plain_yaml.load(sweep_overhead.SPACE), "name": "overhead"})
    return BenchmarkDefinition(
        name="overhead",
        description="The suite's own cost: training throughput vs a bare model.fit, per-trial overhead of a sweep, "
        "peak memory of K concurrent trials vs one, and (with a GPU) images/s of 1, 2 and 4 trials sharing it.",
        kind="performance",
        data="embedded",
        tasks=("reconstruct",),
        space=space,
        metric="throughput_ratio",
        mode="max",
        budget=8,
        budget_unit="trials per timed sweep",
        min_budget=2,  # the memory measurement runs two trials at once
        seeds=1,
        image_size=32,
        runner=_lazy("overhead"),
        accepts=("budget", "limit", "precision"),
    )


def _precision() -> BenchmarkDefinition:
    space = load_space(str(SPACES_DIR / "precision.yaml"))
    return BenchmarkDefinition(
        name="precision",
        description="Mixed precision (auto's policy, else mixed_bfloat16) vs float32: images/s of the 32-48-64 k3 "
        "z128 CAE at 32x32 (target >= 1.8x), and the test MSE of small reconstruction and colorization CAEs that "
        "flatten on 16x16 tiles, trained with the same seeds in both: the paired difference with its 95 % "
        "interval against the seed noise.",
        kind="performance",
        data="embedded",
        tasks=("reconstruct", "colorize-yuv"),
        space=space,
        metric="test_mse",
        mode="min",
        budget=int(space.fixed["max_epochs"]),
        budget_unit="epochs per training",
        min_budget=1,
        seeds=5,
        image_size=int(space.fixed["image_size"]),
        runner=_lazy("precision"),
        accepts=("budget", "seeds", "limit", "image_size"),
    )


def _scale() -> BenchmarkDefinition:
    space = load_space(str(SPACES_DIR / "scale.yaml"))
    return BenchmarkDefinition(
        name="scale",
        description="The driver's cost per trial as a study grows: the tabular table replayed through the real "
        "sweep (Ray Tune, Optuna in SQLite, the study tables), random sampler, 1 and 4 trials at once; seconds "
        "per trial by decile of the study, next to Optuna's own time per trial (random and TPE, no Ray).",
        kind="performance",
        data=str(space.fixed["data"]),
        tasks=(str(space.fixed["task"]),),
        space=space,
        metric="last_first_ratio",
        mode="min",
        budget=2000,
        budget_unit="trials per study",
        min_budget=1,
        seeds=1,
        image_size=int(space.fixed["image_size"]),
        limit=space.fixed.get("limit"),
        runner=_lazy("scale"),
        accepts=("trials", "workers", "table"),
    )


def _lazy(module: str) -> Runner:
    """The module's ``run(plan)``, imported when the benchmark runs (``list`` stays quick)."""

    def runner(plan: RunPlan) -> dict[str, Any]:
        import importlib

        return importlib.import_module(f"benchmarks.{module}").run(plan)

    runner.__name__ = f"{module}.run"
    return runner


FACTORIES: Mapping[str, Callable[[], BenchmarkDefinition]] = {
    "seed-architectures": _seed_architectures,
    "seed-colorization": _seed_colorization,
    "engines": _engines,
    "overhead": _overhead,
    "precision": _precision,
    "scale": _scale,
}
REGISTRY: dict[str, BenchmarkDefinition] = {name: factory() for name, factory in FACTORIES.items()}


def get(name: str) -> BenchmarkDefinition:
    """The registered benchmark called ``name``; an unknown name is a :class:`BenchmarkError` listing them."""
    if name not in REGISTRY:
        raise BenchmarkError(f"unknown benchmark {name!r}; choose one of {', '.join(REGISTRY)} "
                             "(python -m benchmarks list)")
    return REGISTRY[name]


def describe_all() -> str:
    """The registry as a readable table (``python -m benchmarks list``)."""
    lines = []
    for d in REGISTRY.values():
        size = f"{d.image_size}x{d.image_size}" + (f", {d.limit} per split" if d.limit else "")
        lines.append(f"{d.name} ({d.kind})")
        lines.append(f"  {d.description}")
        lines.append(f"  data {d.data} ({size}); tasks {', '.join(d.tasks)}; space {d.space.name} "
                     f"({len(d.space.params)} axes); metric {d.metric} ({d.mode})")
        lines.append(f"  budget {d.budget} {d.budget_unit} (at least {d.min_budget}); seeds {d.seeds}; options "
                     f"{' '.join('--' + a.replace('_', '-') for a in d.accepts)}")
        if d.profiles:
            lines.append(f"  --profile {d.default_profile} (default): the sizes above")
        for name, p in d.profiles.items():
            lines.append(f"  --profile {name}: {p.note}")
    return "\n".join(lines)
