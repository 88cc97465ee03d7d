"""A tabular benchmark: every configuration of a finite grid trained once, its whole learning curve stored.

``python -m benchmarks build-table`` trains each point of a space's grid (``benchmarks/spaces/tabular.yaml``
by default) with :func:`cae.training.train` in this one process, no early stopping, one fixed seed, and
stores per configuration and epoch the same values a real trial reports (``loss``, ``val_mse``,
``val_loss``, ..., ``seconds``) plus the final test scores, in a tidy CSV under ``benchmarks/data/`` with a
JSON of how it was built next to it. The build is resumable: the table is rewritten atomically after every
configuration, and a new build skips the configurations already in the file, so a killed build loses at most
the configuration it was training.

Search strategies then *replay* against the table (like NAS-Bench or HPOBench tabular benchmarks):
:func:`replay_trainable` is a Ray Tune function trainable with the signature of
:func:`search.trial.run_trial`; a trial "trains" by reading its curve and reports every epoch with the same
keys as ``run_trial``, so samplers, ASHA, the Optuna storage and the study tables are the real ones and only
the training is replaced. Compute spent is counted in replayed epochs.

Values are written with 7 significant digits and read back exactly (``float_precision="round_trip"``), so a
replayed value equals the table's value bit for bit.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

import results
from benchmarks import evidence
from cae.data import parse_spec
from cae.epochs import at_best_epoch, kept_epoch
from cae.errors import BenchmarkError, CaesweepError
from results.reports import SCORE_KEYS, EpochReport, FailedReport, FinalReport
from spaces import Space, load_space

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"
DEFAULT_SPACE = PACKAGE_DIR / "spaces" / "tabular.yaml"
# What a trial reports per epoch (the history columns of a study), stored per configuration and epoch.
CURVE_KEYS = tuple(k for k in results.HISTORY_COLUMNS if k != "trial_id")
# What a finished trial adds: its size and the test scores of its kept (best-epoch) weights.
FINAL_KEYS = (
    "params", "best_epoch", "test_mse", "test_psnr", "test_ssim", "native_mse", "trivial_mse", "trivial_psnr",
    "trivial_ssim", "trivial_native_mse", "skill", "pca_mse", "skill_pca",
)
FLOAT_FORMAT = "%.7g"  # enough for MSEs and seconds; keeps the shipped table small


def default_table_path(data: str, image_size: int) -> Path:
    """Where ``build-table`` writes by default: ``benchmarks/data/<dataset>-<size>px.csv``."""
    name, _ = parse_spec(data)
    return DATA_DIR / f"{name}-{image_size}px.csv"


def meta_path(table: Path) -> Path:
    """The JSON that describes how a table was built, next to it."""
    return table.with_suffix(".json")


def cell(value: Any) -> str:
    """One axis value as it appears in a table key: floats to 6 significant digits, everything else as text."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if hasattr(value, "item"):  # numpy scalars
        return cell(value.item())
    return str(value)


@dataclass(frozen=True)
class Entry:
    """One configuration's stored outcome: its per-epoch records and its final scores."""

    curve: tuple[dict[str, float], ...]
    final: dict[str, float]


@dataclass(frozen=True)
class Table:
    """A loaded tabular benchmark (plain dicts only, so it pickles cheaply into Ray workers).

    ``entries`` hold the main grid (training seed ``settings["seed"]``), what replays read; ``repeats`` hold,
    for the configurations trained again with other training seeds, every seed's entry (the main one first):
    the table's own noise.
    """

    axes: tuple[str, ...]  # the searched keys of the flat config that identify a configuration
    epochs: int
    entries: dict[tuple[str, ...], Entry]
    meta: dict[str, Any]
    repeats: dict[tuple[str, ...], tuple[Entry, ...]] = field(default_factory=dict)

    def key(self, flat: Mapping[str, Any]) -> tuple[str, ...]:
        missing = [a for a in self.axes if a not in flat]
        if missing:
            raise BenchmarkError(f"the configuration lacks {', '.join(missing)}; the table is keyed by {self.axes}")
        return tuple(cell(flat[a]) for a in self.axes)

    def lookup(self, flat: Mapping[str, Any]) -> Entry:
        """The entry of a resolved flat config; a configuration outside the grid is a :class:`BenchmarkError`."""
        key = self.key(flat)
        if key not in self.entries:
            shown = ", ".join(f"{a}={v}" for a, v in zip(self.axes, key, strict=True))
            raise BenchmarkError(f"configuration {shown} is not in the table ({len(self.entries)} configurations)")
        return self.entries[key]

    def best(self, metric: str = "val_mse") -> float:
        """The best (lowest) value of a per-epoch metric anywhere in the table: the known optimum."""
        return min(r[metric] for e in self.entries.values() for r in e.curve)

    def frame(self) -> pd.DataFrame:
        """One row per configuration: its axes, its best per-epoch val_mse and its final scores."""
        rows = []
        for key, e in self.entries.items():
            rows.append({**dict(zip(self.axes, key, strict=True)), "best_val_mse": min(r["val_mse"] for r in e.curve),
                         **e.final})
        return pd.DataFrame(rows)


def load_table(path: Path, data: str | None = None) -> Table:
    """Read a table and its JSON; a missing or unreadable file is a :class:`BenchmarkError` naming the fix
    (the build command, with ``--data data`` when given)."""
    path = Path(path)
    build = "python -m benchmarks build-table" + (f" --data {data}" if data else "") + f" --out {path}"
    if not path.is_file() or not meta_path(path).is_file():
        missing = path if not path.is_file() else meta_path(path)
        raise BenchmarkError(f"tabular benchmark file {missing} is missing; build it with `{build}`")
    try:
        meta = json.loads(meta_path(path).read_text())
        frame = pd.read_csv(path, float_precision="round_trip")
        axes, epochs = tuple(meta["axes"]), int(meta["epochs"])
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as exc:
        raise BenchmarkError(f"tabular benchmark {path} cannot be read ({exc}); rebuild it with `{build}`") from None
    main_seed = int(meta.get("settings", {}).get("seed", 0))
    entries = _entries(_seed_rows(frame, main_seed), axes, epochs)
    if not entries:
        raise BenchmarkError(f"tabular benchmark {path} has no complete configuration; build it with `{build}`")
    return Table(axes=axes, epochs=epochs, entries=entries, meta=meta,
                 repeats=_repeats(frame, axes, epochs, entries, main_seed))


def _seed_rows(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The rows trained with training seed ``seed`` (a table without a seed column has only its main seed)."""
    if "seed" not in frame.columns:
        return frame
    return frame[frame["seed"] == seed]


def _repeats(
    frame: pd.DataFrame, axes: Sequence[str], epochs: int, entries: dict[tuple[str, ...], Entry], main_seed: int
) -> dict[tuple[str, ...], tuple[Entry, ...]]:
    """Per configuration trained with other training seeds too: its complete entries, the main seed's first."""
    if "seed" not in frame.columns:
        return {}
    others: dict[tuple[str, ...], list[Entry]] = {}
    for seed in sorted(set(frame["seed"]) - {main_seed}):
        for key, entry in _entries(frame[frame["seed"] == seed], axes, epochs).items():
            others.setdefault(key, []).append(entry)
    return {key: (entries[key], *more) for key, more in others.items() if key in entries}


def _entries(frame: pd.DataFrame, axes: Sequence[str], epochs: int) -> dict[tuple[str, ...], Entry]:
    """Configurations with all ``epochs`` rows (a partly written one, if any, is left out)."""
    entries = {}
    for values, rows in frame.groupby(list(axes), sort=False):
        rows = rows.sort_values("epoch")
        if list(rows["epoch"]) != list(range(1, epochs + 1)):
            continue
        curve = tuple(
            # A column the table was built without (val_colorfulness before it was measured) replays as NaN.
            {k: int(r[k]) if k == "epoch" else float(r.get(k, math.nan)) for k in CURVE_KEYS}
            for r in rows.to_dict("records")
        )
        last = rows.iloc[-1]
        final = {k: float(last[k]) for k in FINAL_KEYS if k in rows.columns and pd.notna(last[k])}
        entries[tuple(cell(v) for v in values)] = Entry(curve=curve, final=final)
    return entries


# -- replay -----------------------------------------------------------------------------------------------------


class Replay(NamedTuple):
    """What a replay trial needs of its configuration: its table entry, epochs, node and monitored metric."""

    entry: Entry
    epochs: int
    node: str
    monitor: str  # what the trial's run keeps its epoch by (the study's first objective, as for a real trial)


def replay_reports(replay: Replay, table_epochs: int, train_images: int) -> list[dict[str, Any]]:
    """What a replayed trial reports, epoch by epoch: the records of :mod:`results.reports`, as
    :func:`search.trial.run_trial` reports them.

    Each epoch's kept validation metrics are those of the epoch a real run would keep so far (the rule of
    :mod:`cae.epochs` on the trial's monitor). The last report is final; it carries the table's test scores only
    when the trial runs the table's full budget and keeps the epoch those scores belong to (the table's
    ``best_epoch``): scores of another epoch's weights would be another model's.
    """
    entry, curve = replay.entry, replay.entry.curve[: replay.epochs]
    params = int(entry.final["params"])
    per_epoch: list[EpochReport] = []
    seconds = 0.0
    for index, record in enumerate(curve):
        seconds += record["seconds"]
        so_far = curve[: index + 1]
        per_epoch.append(EpochReport(
            epoch=int(record["epoch"]),
            record={k: v for k, v in record.items() if k != "epoch"},
            kept=at_best_epoch(so_far, kept_epoch(so_far, replay.monitor)),
            costs={"params": params, "train_seconds": seconds,
                   "images_per_second": train_images * (index + 1) / seconds if seconds > 0 else 0.0},
            node=replay.node,
            extra={"replayed": True},
        ))
    kept = kept_epoch(curve, replay.monitor)
    scored = replay.epochs == table_epochs and kept == int(entry.final.get("best_epoch", -1))
    final = FinalReport(
        last=per_epoch[-1], epochs=replay.epochs, best_epoch=kept,
        scores={k: v for k, v in entry.final.items() if k in SCORE_KEYS} if scored else {},
        finished_at=time.time(),
    )
    return [*(e.to_dict() for e in per_epoch[:-1]), final.to_dict()]


def replay_entry(table: Table, config: dict[str, Any], settings: Any) -> Replay | None:
    """Inside a replay trial: what it replays; None after reporting the trial FAILED with the reason (a
    configuration outside the table, or a budget longer than its curves), as a failing real trial does."""
    from ray import tune

    from search.trial import node_label, resolve_config

    node = node_label()
    try:
        flat = resolve_config(settings, config)
        entry = table.lookup(flat)
        epochs = int(flat["max_epochs"])
        if epochs > table.epochs:
            raise BenchmarkError(f"max_epochs {epochs} is longer than the table's curves ({table.epochs} epochs)")
    except CaesweepError as exc:
        tune.report(FailedReport(error=str(exc), node=node).to_dict())
        return None
    return Replay(entry, epochs, node, str(flat.get("monitor", "val_mse")))


def replay_trainable(table: Table) -> Callable[[dict[str, Any], Any, Any], None]:
    """A Ray Tune function trainable that replays ``table`` (pass it as ``search.commands.run(trainable=...)``).

    Same signature as :func:`search.trial.run_trial`; ``data`` is not used (the table holds the outcome); a
    configuration the table cannot replay ends the trial as FAILED (:func:`replay_entry`).
    """
    train_images = int(table.meta.get("train_images", 0))

    def replay(config: dict[str, Any], data: Any, settings: Any) -> None:
        from ray import tune

        replay = replay_entry(table, config, settings)
        if replay is None:
            return
        for report in replay_reports(replay, table.epochs, train_images):
            tune.report(report)

    return replay


# -- build ------------------------------------------------------------------------------------------------------


def grid_configs(space: Space, overrides: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every point of the space's grid as a resolved flat config, with ``overrides`` applied."""
    grid = space.grid()
    configs = []
    for values in itertools.product(*grid.values()):
        flat = space.resolve(dict(zip(grid, values, strict=True)))
        flat.update(overrides)
        configs.append(flat)
    return configs


@dataclass(frozen=True)
class BuildPlan:
    """What a build trains, and how; ``settings`` must match an existing table's to resume it."""

    space: Space
    out: Path
    # task, data, image_size, limit, epochs, seed (training), split_seed, loss, repeat_seeds, repeat_configs:
    # everything that changes the values
    settings: dict[str, Any]
    configs: list[dict[str, Any]]

    @property
    def axes(self) -> tuple[str, ...]:
        return tuple(sorted(self.space.grid()))

    def key(self, flat: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(cell(flat[a]) for a in self.axes)


DEFAULT_REPEATS = 3  # training seeds of the repeated configurations (the main seed and 2 more)
DEFAULT_REPEAT_CONFIGS = 5  # the best configurations of the main grid, trained again with the other seeds


def plan_build(
    space_file: Path = DEFAULT_SPACE,
    out: Path | None = None,
    data: str | None = None,
    limit: int | None = None,
    epochs: int | None = None,
    seed: int = 0,
    split_seed: int = 0,
    repeats: int = DEFAULT_REPEATS,
    repeat_configs: int = DEFAULT_REPEAT_CONFIGS,
) -> BuildPlan:
    """Check the build's inputs (nothing is trained or written) and list its configurations."""
    space = load_space(str(space_file))
    fixed = dict(space.fixed)
    spec = data or str(fixed["data"])
    parse_spec(spec)
    for flag, value, low in (("--seed", seed, 0), ("--split-seed", split_seed, 0), ("--repeats", repeats, 1),
                             ("--repeat-configs", repeat_configs, 0)):
        if not isinstance(value, int) or value < low:
            raise BenchmarkError(f"{flag} {value!r} must be an integer >= {low}")
    settings = {
        "task": fixed["task"],
        "data": spec,
        "image_size": int(fixed["image_size"]),
        "limit": limit if limit is not None else fixed.get("limit"),
        "epochs": epochs if epochs is not None else int(fixed["max_epochs"]),
        "seed": seed,
        "split_seed": split_seed,
        "loss": fixed.get("loss", "mse"),
        "repeat_seeds": [seed + i for i in range(1, repeats)] if repeat_configs else [],
        "repeat_configs": repeat_configs if repeats > 1 else 0,
    }
    for key, value in (("limit", settings["limit"]), ("epochs", settings["epochs"])):
        if value is not None and (not isinstance(value, int) or value < (3 if key == "limit" else 1)):
            raise BenchmarkError(f"--{key} {value!r} is too small to build a table")
    overrides = {"data": spec, "max_epochs": settings["epochs"], "seed": seed, "patience": None}
    try:
        configs = grid_configs(space, overrides)
    except CaesweepError as exc:
        raise BenchmarkError(f"space {space_file} cannot be a table: {exc}") from None
    if settings["repeat_configs"] > len(configs):
        raise BenchmarkError(f"--repeat-configs {repeat_configs} is more than the grid's {len(configs)} "
                             "configurations")
    return BuildPlan(space, Path(out) if out else default_table_path(spec, settings["image_size"]), settings, configs)


def build_table(plan: BuildPlan, max_configs: int | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train what the table does not have yet: first every configuration of the grid with the main training
    seed, then the best ``repeat_configs`` of them with the other seeds; return the table's JSON description.

    ``max_configs`` caps the trainings of this call (the build resumes where it stopped)."""
    frame = _existing(plan)
    s = plan.settings
    budget = math.inf if max_configs is None else max_configs
    loaded: list[tuple[Any, dict[str, Any]]] = []  # the dataset and the table's JSON, once needed

    def data_and_meta() -> tuple[Any, dict[str, Any]]:
        if not loaded:
            from cae.data import load_dataset

            dataset = load_dataset(s["data"], image_size=s["image_size"], seed=s["split_seed"], limit=s["limit"])
            loaded.append((dataset, _meta(plan, dataset, frame)))
        return loaded[0]

    trained = 0
    for phase in ("grid", "repeats"):
        jobs = _jobs(plan, frame, phase)
        if phase == "grid":
            present = len(plan.configs) - len(jobs)
            log(f"table {plan.out}: {present} of {len(plan.configs)} configurations present, training {len(jobs)}")
        elif jobs:
            log(f"repeats: the best {s['repeat_configs']} configurations with training seeds "
                f"{', '.join(map(str, s['repeat_seeds']))}: training {len(jobs)}")
        for number, flat in enumerate(jobs, 1):
            if trained >= budget:
                break
            dataset, meta = data_and_meta()
            started = time.perf_counter()
            rows = _train_rows(flat, dataset, plan.axes)
            frame = pd.concat([frame, pd.DataFrame(rows)], ignore_index=True) if len(frame) else pd.DataFrame(rows)
            meta["build_seconds"] += time.perf_counter() - started
            meta["configs_built"] = len(_entries(_seed_rows(frame, s["seed"]), plan.axes, s["epochs"]))
            results.write_atomic(plan.out, frame.to_csv(index=False, float_format=FLOAT_FORMAT))
            results.write_atomic(meta_path(plan.out), json.dumps(meta, indent=2) + "\n")
            trained += 1
            label = ", ".join(f"{a}={cell(flat[a])}" for a in plan.axes)
            log(f"[{phase} {number}/{len(jobs)}] {label}, seed {flat['seed']}: val_mse {rows[-1]['val_mse']:.5f} "
                f"({time.perf_counter() - started:.1f} s)")
        if trained >= budget or (phase == "grid" and _jobs(plan, frame, "grid")):
            break
    _, meta = data_and_meta()  # also when nothing was trained: describe the table (e.g. one copied without JSON)
    meta["configs_built"] = len(_entries(_seed_rows(frame, s["seed"]), plan.axes, s["epochs"]))
    results.write_atomic(meta_path(plan.out), json.dumps(meta, indent=2) + "\n")
    if not _jobs(plan, frame, "grid") and not _jobs(plan, frame, "repeats"):
        meta["summary"] = summarize(load_table(plan.out))
        results.write_atomic(meta_path(plan.out), json.dumps(meta, indent=2) + "\n")
        for line in summary_lines(meta["summary"]):
            log(line)
    return meta


FLAT_SHARE = 0.25  # the best quarter of the configurations must have flattened (evidence.FLAT_GAIN)


def last_third_gain(entry: Entry) -> float:
    """:func:`benchmarks.evidence.last_third_gain` of a configuration's val MSE curve."""
    return evidence.last_third_gain([r["val_mse"] for r in entry.curve])


def summarize(table: Table) -> dict[str, Any]:
    """What a reader checks before trusting a table: have the good configurations flattened, do they beat the
    task's baselines, and how much does the outcome move with the training seed (the table's own noise)."""
    import numpy as np

    rows = sorted(table.entries.values(), key=lambda e: min(r["val_mse"] for r in e.curve))
    top = rows[: max(1, math.ceil(len(rows) * FLAT_SHARE))]
    gains = np.array([last_third_gain(e) for e in top])
    skills = np.array([e.final.get("skill", math.nan) for e in table.entries.values()], dtype=float)
    best = rows[0].final
    out: dict[str, Any] = {
        "flat": {"share": FLAT_SHARE, "threshold": evidence.FLAT_GAIN, "configs": len(top),
                 "flattened": int(np.sum(gains < evidence.FLAT_GAIN)), "gain_median": float(np.nanmedian(gains)),
                 "gain_max": float(np.nanmax(gains)), "last_third_epochs": max(1, table.epochs // 3)},
        "baseline": {"trivial_mse": best.get("trivial_mse"), "best_test_mse": best.get("test_mse"),
                     "best_skill": float(np.nanmax(skills)), "beat_trivial": int(np.sum(skills > 0)),
                     "configs": len(skills), "best_skill_pca": best.get("skill_pca")},
    }
    if table.repeats:
        spreads, test_spreads, bias = [], [], []
        for entries in table.repeats.values():
            values = np.array([min(r["val_mse"] for r in e.curve) for e in entries])
            tests = np.array([e.final.get("test_mse", math.nan) for e in entries])
            spreads.append(float(values.std(ddof=1) / values.mean()))
            test_spreads.append(float(tests.std(ddof=1) / tests.mean()))
            # The repeated configurations were chosen for their main-seed value: how much lower it is than the
            # same configuration's other seeds (selection: the table's best values are partly luck).
            bias.append(float(values[0] / values[1:].mean() - 1))
        out["noise"] = {"configs": len(table.repeats), "seeds": len(next(iter(table.repeats.values()))),
                        "val_mse_rel_sd_median": float(np.median(spreads)),
                        "val_mse_rel_sd_max": float(np.max(spreads)),
                        "test_mse_rel_sd_median": float(np.nanmedian(test_spreads)),
                        "main_seed_gap_median": float(np.median(bias))}
    return out


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """The summary as the lines ``build-table`` prints; a budget too short to flatten is a warning."""
    flat, base = summary["flat"], summary["baseline"]
    lines = [
        f"flattened: {flat['flattened']} of the best {flat['configs']} configurations improved their val MSE by "
        f"less than {flat['threshold']:.0%} over the last {flat['last_third_epochs']} epochs (median "
        f"{flat['gain_median']:.1%}, largest {flat['gain_max']:.1%})",
        f"baseline: {base['beat_trivial']} of {base['configs']} configurations beat the trivial baseline (best "
        f"skill {base['best_skill']:+.3f}; best test MSE {base['best_test_mse']:.5g} vs trivial "
        f"{base['trivial_mse']:.5g})",
    ]
    if "noise" in summary:
        noise = summary["noise"]
        lines.append(
            f"noise: {noise['configs']} configurations x {noise['seeds']} training seeds: the best val MSE's "
            f"relative standard deviation is {noise['val_mse_rel_sd_median']:.1%} (median; largest "
            f"{noise['val_mse_rel_sd_max']:.1%}); the main seed's value of these best configurations is "
            f"{-noise['main_seed_gap_median']:.1%} below their other seeds' (median): they were picked by it"
        )
    if flat["flattened"] < flat["configs"]:
        lines.append(
            f"warning: {flat['configs'] - flat['flattened']} of the best {flat['configs']} configurations are still "
            f"improving (by up to {flat['gain_max']:.1%} over the last third of their epochs): the table ranks "
            "how fast configurations learn, not how good they become; build with more --epochs or a larger --limit"
        )
    return lines


def _jobs(plan: BuildPlan, frame: pd.DataFrame, phase: str) -> list[dict[str, Any]]:
    """The configurations (flat configs, with their training seed) a phase still has to train."""
    s = plan.settings
    main = _entries(_seed_rows(frame, s["seed"]), plan.axes, s["epochs"]) if len(frame) else {}
    if phase == "grid":
        return [c for c in plan.configs if plan.key(c) not in main]
    if len(main) < len(plan.configs) or not s["repeat_configs"]:
        return []
    best = sorted(plan.configs, key=lambda c: min(r["val_mse"] for r in main[plan.key(c)].curve))
    jobs = []
    for seed in s["repeat_seeds"]:
        done = _entries(_seed_rows(frame, seed), plan.axes, s["epochs"]) if "seed" in frame.columns else {}
        jobs += [{**c, "seed": seed} for c in best[: s["repeat_configs"]] if plan.key(c) not in done]
    return jobs


def _existing(plan: BuildPlan) -> pd.DataFrame:
    """The rows already built; a table built with other settings is refused, never mixed."""
    if not plan.out.is_file():
        return pd.DataFrame()
    if meta_path(plan.out).is_file():
        old = json.loads(meta_path(plan.out).read_text()).get("settings")
        if old != plan.settings:
            raise BenchmarkError(
                f"{plan.out} was built with other settings ({old}); pass another --out or delete it to rebuild "
                f"with {plan.settings}"
            )
    return pd.read_csv(plan.out, float_precision="round_trip")


def _meta(plan: BuildPlan, dataset: Any, done: pd.DataFrame) -> dict[str, Any]:
    from search.metadata import git_commit, versions

    old = json.loads(meta_path(plan.out).read_text()) if len(done) and meta_path(plan.out).is_file() else {}
    return {
        "settings": plan.settings,
        "axes": list(plan.axes),
        "epochs": plan.settings["epochs"],
        "configs": len(plan.configs),
        "configs_built": 0,
        "train_images": int(len(dataset.train)),
        "data_summary": dataset.summary(),
        "data_source": dataset.source,
        "space": plan.space.to_dict() | {"path": None},
        "build_seconds": float(old.get("build_seconds", 0.0)),
        "versions": versions(),
        "git_commit": git_commit(),
        "command": "python -m benchmarks build-table",
    }


def _train_rows(flat: dict[str, Any], dataset: Any, axes: Sequence[str]) -> list[dict[str, Any]]:
    """Train one configuration; its rows of the table (one per epoch)."""
    from cae.config import from_flat
    from cae.runtime import keras
    from cae.training import DivergedError, train

    keras.backend.clear_session()
    run = from_flat(flat)
    key = {a: flat[a] for a in axes}
    try:
        result = train(run, dataset)
    except DivergedError as exc:
        # A diverged configuration is a result too: its curve ends in inf, so no strategy prefers it.
        return [{**key, "seed": run.train.seed, "epoch": e, **{k: math.inf for k in CURVE_KEYS if k != "epoch"},
                 "seconds": 0.0, "params": 0, "error": str(exc)} for e in range(1, run.train.epochs + 1)]
    final = {"params": result.params, "best_epoch": result.best_epoch, **result.test}
    return [{**key, "seed": run.train.seed, **{k: r.get(k) for k in CURVE_KEYS},
             **{k: final.get(k) for k in FINAL_KEYS}} for r in result.history]
