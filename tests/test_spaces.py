"""Search spaces: shipped files, sampling with a real Optuna trial, grids, roles and every invalid input."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest

from cae.config import from_flat
from cae.errors import SpaceError
from spaces import ROLES, TASKS, Param, Space, list_spaces, load_space, space_from_dict
from tests.spaces_for_tests import TUNED

optuna.logging.set_verbosity(optuna.logging.WARNING)

SHIPPED = ["architecture", "colorization", "loss", "quick"]
PER_LEVEL = """
params:
  depth: {low: 2, high: 4}
  filters: {per_level: [16, 32, 48, 64]}
  lr: {low: 1.0e-4, high: 1.0e-2, log: true, role: nuisance}
"""


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def random_trial(seed: int) -> optuna.Trial:
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()


def test_shipped_spaces_are_listed_and_load() -> None:
    assert list_spaces() == SHIPPED
    for name in SHIPPED:
        space = load_space(name)
        assert space.name == name
        assert space.path is not None and space.path.endswith(f"spaces/{name}.yaml")
        assert space.description and space.samples >= 1 and space.params
        assert set(space.roles().values()) <= set(ROLES)


@pytest.mark.parametrize("name", SHIPPED)
def test_sampled_configs_resolve_for_many_seeds(name: str) -> None:
    space = load_space(name)
    for seed in range(25):
        trial = random_trial(seed)
        raw = space.sample(trial)
        assert raw == trial.params
        flat = space.resolve(raw)
        from_flat(flat)
        assert flat["max_epochs"] == space.fixed["max_epochs"]
        assert flat["depth"] == len(flat["filters"].split("-"))


def test_quick_fits_its_three_minute_budget() -> None:
    # Measured on 2 cores, two trials at a time: a 16-32-64 k3 colouriser trains at >= 100 images/s each (with
    # skips), validation costs about a third of a training pass, and a trial's setup and test scoring about 10 s;
    # kernel 5 is 2-4x slower. Ray's start and the report take about 25 s together.
    quick = load_space("quick")
    assert quick.fixed["kernel_size"] == 3 and quick.fixed["data"] == "embedded"
    assert quick.fixed["filters"] == "16-32-64" and quick.fixed["image_size"] == 32
    epoch_seconds = quick.fixed["limit"] * (1 + 1 / 3) / 100
    trial_seconds = quick.fixed["max_epochs"] * epoch_seconds + 10
    assert quick.samples / 2 * trial_seconds + 25 <= 180
    # Six samples cover the whole grid, since the sampler never trains a configuration twice.
    assert quick.samples == len(quick.grid()["task"]) * len(quick.grid()["skip"])


def test_example_resolve_output() -> None:
    flat = load_space(TUNED).resolve({"filters": "32-48-64", "latent_dim": 64, "lr": 1e-3})
    assert flat == {
        "task": "reconstruct",
        "data": "embedded",
        "limit": 1500,
        "image_size": 32,
        "max_epochs": 3,
        "batch_size": 64,
        "loss": "mse",
        "kernel_size": 3,
        "filters": "32-48-64",
        "latent_dim": 64,
        "lr": 1e-3,
        "depth": 3,
    }


def test_tpe_drives_sample_define_by_run() -> None:
    space = load_space(TUNED)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3))
    study.optimize(lambda trial: space.resolve(space.sample(trial))["lr"], n_trials=8)
    assert len(study.trials) == 8
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_per_level_filters_are_conditional_on_depth(tmp_path: Path) -> None:
    space = load_space(str(write(tmp_path, PER_LEVEL)))
    depths = set()
    for seed in range(40):
        raw = space.sample(random_trial(seed))
        depth = raw["depth"]
        depths.add(depth)
        assert {k for k in raw if k.startswith("filters_")} == {f"filters_{i}" for i in range(1, depth + 1)}
        flat = space.resolve(raw)
        assert flat["depth"] == depth
        assert flat["filters"] == "-".join(str(raw[f"filters_{i}"]) for i in range(1, depth + 1))
        assert not any(k.startswith("filters_") for k in flat)
    assert depths == {2, 3, 4}


def test_increasing_sorts_levels_when_resolving(tmp_path: Path) -> None:
    space = load_space(str(write(tmp_path, PER_LEVEL.replace("48, 64]}", "48, 64], increasing: true}"))))
    flat = space.resolve({"depth": 3, "filters_1": 64, "filters_2": 16, "filters_3": 32, "lr": 1e-3})
    assert flat["filters"] == "16-32-64"


def test_resolve_of_per_level_filters_needs_depth_and_every_level(tmp_path: Path) -> None:
    space = load_space(str(write(tmp_path, PER_LEVEL)))
    with pytest.raises(SpaceError, match="lack an integer depth"):
        space.resolve({"filters_1": 16, "filters_2": 32, "lr": 1e-3})
    with pytest.raises(SpaceError, match="depth 3 but no value for filters_3"):
        space.resolve({"depth": 3, "filters_1": 16, "filters_2": 32, "lr": 1e-3})
    with pytest.raises(SpaceError, match=r"unknown: \['filters_3'\]"):
        space.resolve({"depth": 2, "filters_1": 16, "filters_2": 32, "filters_3": 32, "lr": 1e-3})


def test_fixed_depth_with_per_level_filters(tmp_path: Path) -> None:
    text = "fixed: {depth: 2}\nparams:\n  filters: {per_level: [8, 16]}\n"
    space = load_space(str(write(tmp_path, text)))
    raw = space.sample(random_trial(0))
    assert set(raw) == {"filters_1", "filters_2"}
    assert space.resolve(raw)["depth"] == 2
    assert space.roles()["depth"] == "fixed"
    assert space.grid() == {"filters": ["8-8", "8-16", "16-8", "16-16"]}


def test_grid_sizes_and_grid_sampler_exhausts_distinct_configs(tmp_path: Path) -> None:
    text = """
    params:
      depth: {low: 2, high: 3}
      filters: {per_level: [16, 32]}
      kernel_size: {low: 3, high: 5, step: 2}
      lr: {choices: [1.0e-3]}
      batch_norm: {choices: [false, true]}
    """
    space = load_space(str(write(tmp_path, text)))
    grid = space.grid()
    assert {k: len(v) for k, v in grid.items()} == {
        "kernel_size": 2,
        "lr": 1,
        "batch_norm": 2,
        "filters": 4 + 8,
    }
    assert "depth" not in grid and "16-32-16" in grid["filters"]
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=0))
    configs: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        configs.append(space.resolve(space.sample(trial, grid=True)))
        return 0.0

    study.optimize(objective)  # GridSampler stops the study once every grid point has run
    assert len(configs) == 2 * 1 * 2 * 12 == space.size(grid=True)
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == len(configs)
    # Sampled define-by-run, the same space gives as many different sets of raw values (depth, filters_1, ...).
    raw = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = {json.dumps(space.sample(raw.ask()), sort_keys=True) for _ in range(1500)}
    assert len(drawn) == space.size() == 2 * 1 * 2 * (4 + 8)


def test_grid_of_increasing_filters_has_no_permutations(tmp_path: Path) -> None:
    text = PER_LEVEL.replace("48, 64]}", "64], increasing: true}").replace(
        "lr: {low", "lr: {step: 1.0e-4, low"
    )
    text = text.replace(", log: true", "")
    grid = load_space(str(write(tmp_path, text))).grid()
    # non-decreasing lists of 2, 3, 4 levels from 3 counts: C(4,2) + C(5,3) + C(6,4)
    assert len(grid["filters"]) == 6 + 10 + 15
    space = load_space(str(write(tmp_path, text)))
    rest = space.size(grid=True) // len(grid["filters"])
    assert space.size() == rest * (3**2 + 3**3 + 3**4)  # raw values: each level drawn, sorted when resolved
    assert len(grid["lr"]) == 100 and grid["lr"][0] == 1e-4 and grid["lr"][-1] == 1e-2


def test_continuous_float_range_has_no_grid() -> None:
    with pytest.raises(SpaceError, match="'lr'.*not finite; give choices or a step"):
        load_space(TUNED).grid()
    assert load_space(TUNED).size() is None


def test_roles() -> None:
    assert load_space(TUNED).roles() == {
        "task": "fixed",
        "data": "fixed",
        "limit": "fixed",
        "image_size": "fixed",
        "max_epochs": "fixed",
        "batch_size": "fixed",
        "loss": "fixed",
        "kernel_size": "fixed",
        "filters": "scientific",
        "depth": "scientific",
        "latent_dim": "scientific",
        "lr": "nuisance",
    }
    roles = load_space("colorization").roles()
    assert roles["task"] == "scientific" and roles["lr"] == "nuisance" and roles["depth"] == "fixed"


def test_roles_cover_every_resolved_key() -> None:
    for name in SHIPPED:
        space = load_space(name)
        assert set(space.resolve(space.sample(random_trial(0)))) == set(space.roles())


class RecordingTrial:
    """Only the three suggest_* calls, keyword-only like Optuna: what a keras-tuner adapter would provide."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        self.calls.append(("int", name, {"low": low, "high": high, "step": step, "log": log}))
        return low

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        self.calls.append(("float", name, {"low": low, "high": high, "step": step, "log": log}))
        return low

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.calls.append(("categorical", name, {"choices": tuple(choices)}))
        return choices[-1]


def test_sample_uses_only_the_three_suggest_calls() -> None:
    trial = RecordingTrial()
    raw = load_space(TUNED).sample(trial)
    assert raw == {"filters": "32-48-64", "latent_dim": 32, "lr": 3e-4}
    assert trial.calls == [
        ("categorical", "filters", {"choices": ("16-32", "16-32-64", "32-48-64")}),
        ("int", "latent_dim", {"low": 32, "high": 256, "step": 1, "log": True}),
        ("float", "lr", {"low": 3e-4, "high": 3e-3, "step": None, "log": True}),
    ]


def test_resolve_refuses_foreign_or_impossible_values() -> None:
    tuned = load_space(TUNED)
    with pytest.raises(SpaceError, match=r"unknown: \['dropout'\]"):
        tuned.resolve({"filters": "16-32", "latent_dim": 64, "lr": 1e-3, "dropout": 0.5})
    with pytest.raises(SpaceError, match=r"missing: \['lr'\]"):
        tuned.resolve({"filters": "16-32", "latent_dim": 64})
    with pytest.raises(SpaceError, match="tuned.*impossible.*latent_dim 0"):
        tuned.resolve({"filters": "16-32", "latent_dim": 0, "lr": 1e-3})


def test_to_dict_is_json_and_reads_back(tmp_path: Path) -> None:
    per_level = str(write(tmp_path, PER_LEVEL.replace("48, 64]}", "48, 64], increasing: true}")))
    for name in [*SHIPPED, per_level]:
        space = load_space(name)
        data = json.loads(json.dumps(space.to_dict()))
        assert space_from_dict(data) == space


def test_spaces_pickle_and_hash() -> None:
    space = load_space("architecture")
    assert pickle.loads(pickle.dumps(space)) == space
    assert hash(space) == hash(load_space("architecture"))


def test_python_construction_validates_too() -> None:
    with pytest.raises(SpaceError, match=r"parameter 'lr': low <= high must hold, got low=0.1, high=0.01"):
        Param("lr", "float", low=0.1, high=0.01)
    space = Space("mine", params=(Param("skip", "categorical", choices=(False, True)),))
    assert space.fixed["task"] == "reconstruct" and space.fixed["max_epochs"] == 10
    with pytest.raises(TypeError):
        space.fixed["task"] = "denoise"  # type: ignore[index]


def test_exponent_without_dot_is_a_float(tmp_path: Path) -> None:
    space = load_space(str(write(tmp_path, "params:\n  lr: {low: 1e-4, high: 1e-2, log: true}\n")))
    assert space.params[0].kind == "float" and space.params[0].low == 1e-4


def test_user_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "samples: 3\nparams:\n  kernel_size: {choices: [3, 5]}\n", "my_space.yml")
    space = load_space(str(path))
    assert (space.name, space.path, space.samples) == ("my_space", str(path.resolve()), 3)
    monkeypatch.chdir(tmp_path)
    assert load_space("my_space.yml") == space


def test_missing_file_and_unknown_name() -> None:
    with pytest.raises(SpaceError, match=r"'/no/such/space.yaml' does not exist.*architecture, colorization"):
        load_space("/no/such/space.yaml")
    with pytest.raises(SpaceError, match=r"unknown space 'nope'; shipped spaces: architecture, .*quick"):
        load_space("nope")


def test_python_tags_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = write(tmp_path, f'params: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(SpaceError, match="python/object/apply:os.system.*only plain YAML") as info:
        load_space(str(path))
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_task_names_match_cae_tasks() -> None:
    # spaces keeps its own tuple so that importing it never pulls in numpy-heavy task code
    from cae.tasks import TASKS as CAE_TASKS

    assert tuple(CAE_TASKS) == TASKS


def test_importing_spaces_is_cheap() -> None:
    code = (
        "import sys, spaces; spaces.load_space('quick'); "
        "print(sorted(m for m in ('tensorflow', 'keras', 'ray', 'optuna') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


DEEP = "fixed: {image_size: 256}\nparams:\n  filters: {per_level: [16]}\n  depth: "
INVALID = {
    "unknown top-level key": ("samplez: 3\n", ["samplez", "allowed: description, samples, fixed, params"]),
    "unknown parameter": ("params:\n  learning_rate: {low: 0.1, high: 1.0}\n", ["'learning_rate'", "lr"]),
    "unknown distribution key": ("params:\n  lr: {low: 0.1, hi: 1.0}\n", ["'lr'", "hi", "allowed: low"]),
    "string low": ("params:\n  lr: {low: abc, high: 1.0}\n", ["'lr'", "low must be a number", "'abc'"]),
    "bool low": ("params:\n  latent_dim: {low: true, high: 64}\n", ["'latent_dim'", "low must be a number"]),
    "float on int axis": ("params:\n  latent_dim: {low: 32.5, high: 64}\n", ["'latent_dim'", "integers"]),
    "unknown type": (
        "params:\n  lr: {low: 0.1, high: 1.0, type: double}\n",
        ["'lr'", "'double'", "int, float"],
    ),
    "empty choices": ("params:\n  kernel_size: {choices: []}\n", ["'kernel_size'", "empty"]),
    "duplicate choices": (
        "params:\n  kernel_size: {choices: [3, 5, 3]}\n",
        ["'kernel_size'", "distinct", "3"],
    ),
    "nested choice": ("params:\n  activation: {choices: [[relu]]}\n", ["'activation'", "['relu']"]),
    "choices with low": ("params:\n  lr: {choices: [0.1], low: 0.1}\n", ["'lr'", "combined with low"]),
    "no low/high": ("params:\n  lr: {low: 0.1}\n", ["'lr'", "both low: and high:"]),
    "scalar entry": ("params:\n  lr: 0.001\n", ["'lr'", "must be a mapping"]),
    "low > high": ("params:\n  latent_dim: {low: 256, high: 32}\n", ["'latent_dim'", "low=256, high=32"]),
    "log with low 0": (
        "params:\n  lr: {low: 0.0, high: 0.1, log: true}\n",
        ["'lr'", "log scale needs low > 0"],
    ),
    "log and step": (
        "params:\n  latent_dim: {low: 32, high: 256, log: true, step: 2}\n",
        ["'latent_dim'", "step"],
    ),
    "step not dividing": (
        "params:\n  latent_dim: {low: 32, high: 100, step: 64}\n",
        ["'latent_dim'", "multiple"],
    ),
    "depth > 8": (DEEP + "{low: 2, high: 9}\n", ["'depth'", "high 9", "integers from 1 to 8"]),
    "latent_dim > 65536": ("params:\n  latent_dim: {choices: [128, 100000]}\n", ["'latent_dim'", "100000"]),
    "batch_size > 4096": ("params:\n  batch_size: {low: 32, high: 8192}\n", ["'batch_size'", "8192", "4096"]),
    "lr >= 10": (
        "params:\n  lr: {low: 0.1, high: 10.0}\n",
        ["'lr'", "high 10.0", "strictly between 0 and 10"],
    ),
    "lr 0": ("params:\n  lr: {choices: [0.0, 0.1]}\n", ["'lr'", "choice 0.0"]),
    "even kernel": ("params:\n  kernel_size: {choices: [3, 4]}\n", ["'kernel_size'", "choice 4", "odd"]),
    "kernel > 11": ("params:\n  kernel_size: {choices: [13]}\n", ["'kernel_size'", "13", "1 to 11"]),
    "kernel range of step 1": ("params:\n  kernel_size: {low: 3, high: 7}\n", ["'kernel_size'", "even step"]),
    "filters > 4096": ("params:\n  filters: {choices: ['32-8192']}\n", ["'filters'", "'32-8192'", "4096"]),
    "filters malformed": ("params:\n  filters: {choices: ['32/64']}\n", ["'filters'", "like 32-48-64"]),
    "per-level > 4096": (
        DEEP + "{low: 2, high: 3}\n  filters: {per_level: [16, 5000]}\n",
        ["'filters'", "5000"],
    ),
    "depth with explicit filters": (
        "params:\n  depth: {low: 2, high: 3}\n  filters: {choices: ['16-32']}\n",
        ["depth is implied by the filters"],
    ),
    "per_level without depth": (
        "params:\n  filters: {per_level: [16, 32]}\n",
        ["per_level filters need a depth"],
    ),
    "increasing without per_level": (
        "params:\n  filters: {choices: ['16-32'], increasing: true}\n",
        ["'filters'", "increasing applies only to per_level"],
    ),
    "depth too deep for image": (
        "params:\n  depth: {low: 2, high: 6}\n  filters: {per_level: [16]}\n",
        ["'depth' value 6", "64px", "image_size is 32", "at most 5 levels"],
    ),
    "filters too deep for image": (
        "fixed: {image_size: 16}\nparams:\n  filters: {choices: ['8-16', '8-16-32-64-128']}\n",
        ["'filters' choice '8-16-32-64-128'", "image_size is 16", "at most 4 levels"],
    ),
    "fixed filters too deep": ("fixed: {filters: 8-16-32-64-128-256}\n", ["fixed filters", "64px"]),
    "role mismatch depth/filters": (
        "params:\n  depth: {low: 2, high: 3, role: nuisance}\n  filters: {per_level: [16]}\n",
        ["same role"],
    ),
    "unknown role": (
        "params:\n  lr: {low: 0.1, high: 1.0, role: important}\n",
        ["'lr'", "'important'", "nuisance"],
    ),
    "role fixed on a searched axis": (
        "params:\n  lr: {low: 0.1, high: 1.0, role: fixed}\n",
        ["'lr'", "fixed:"],
    ),
    "unknown task choice": (
        "params:\n  task: {choices: [reconstruct, paint]}\n",
        ["'task'", "'paint'", "colorize-lab"],
    ),
    "unknown loss choice": ("params:\n  loss: {choices: [mse, l1]}\n", ["'loss'", "'l1'", "mse+ssim"]),
    "range on a categorical axis": ("params:\n  loss: {low: 1, high: 2}\n", ["'loss'", "takes choices"]),
    "unknown fixed task": ("fixed: {task: paint}\n", ["fixed task 'paint'", "reconstruct-gray"]),
    "unknown fixed key": ("fixed: {epochs: 3}\n", ["'epochs'", "max_epochs"]),
    "fixed and searched": (
        "fixed: {lr: 0.001}\nparams:\n  lr: {low: 0.0001, high: 0.01}\n",
        ["lr is both searched", "keep one"],
    ),
    "image size not a power of two": ("fixed: {image_size: 48}\n", ["fixed image_size 48", "powers of two"]),
    # The same limits as cae.data and cae.config: no space promises an image size no dataset can give.
    "image size above the datasets'": ("fixed: {image_size: 512}\n", ["fixed image_size 512", "256"]),
    "image size below the datasets'": ("fixed: {image_size: 4}\n", ["fixed image_size 4", "8"]),
    "noise out of range": ("fixed: {noise: 5}\n", ["fixed noise 5", "0 to 2"]),
    "max_epochs 0": ("fixed: {max_epochs: 0}\n", ["fixed max_epochs 0"]),
    "samples 0": ("samples: 0\n", ["samples", "positive integer", "0"]),
    "params not a mapping": ("params: [lr]\n", ["params must be a mapping", "['lr']"]),
    "not a mapping": ("- lr\n- depth\n", ["expected a mapping", "got a list"]),
    "empty file": ("", ["empty"]),
    "comment-only file": ("# nothing here\n", ["empty"]),
    "invalid yaml": ("params: {lr: [\n", ["invalid YAML"]),
    "python object tag": (
        "fixed: !!python/object:collections.OrderedDict {}\n",
        ["python/object", "plain YAML"],
    ),
}


@pytest.mark.parametrize("case", INVALID)
def test_invalid_space_files_name_the_file_and_entry(tmp_path: Path, case: str) -> None:
    text, expected = INVALID[case]
    path = write(tmp_path, text)
    with pytest.raises(SpaceError) as info:
        load_space(str(path))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path)), message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
