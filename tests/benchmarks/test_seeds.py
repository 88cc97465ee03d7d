"""The seed reproductions: their tables and verdicts checked exactly on hand-made trial tables, and both run
end to end at a tiny size through the real sweep."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import definitions, seed_architectures, seed_colorization
from benchmarks.cli import main
from benchmarks.definitions import RunSettings
from cae.cli import run
from cae.errors import BenchmarkError, UsageError
from results import load_study, study_paths

TINY = ("--budget", "1", "--limit", "8", "--image-size", "8", "--concurrency", "2")


SIZE = {"16-32": 4.0, "32-64": 3.0, "32-48-64": 2.0, "64-128-256": 1.0}


def architecture_trials(spread: float = 0.0005, swap: tuple[str, str] | None = None) -> pd.DataFrame:
    """Four filter lists x kernel 3 x three latent sizes x two learning rates (search trials, seed 0), then
    the best configuration of each filter list again with training seeds 1 and 2 (``repeat_of``): each filter
    list's seeds lie at its rank / 100 +- ``spread``; ``swap`` exchanges two filter lists' repeat levels."""
    rows = []
    for filters, rank in SIZE.items():
        for latent, wiggle in ((64, 0.3), (128, 0.0), (256, 0.2)):
            for lr, worse in ((1e-3, 0.0), (1e-4, 1.0)):
                mse = (rank + wiggle + worse) / 100
                rows.append({"trial_id": f"{filters}-z{latent}-{lr}", "repeat_of": None, "status": "COMPLETE",
                             "architecture": f"{filters} k3 z{latent}", "filters": filters, "kernel_size": 3,
                             "latent_dim": latent, "lr": lr, "val_mse": mse, "test_mse": mse, "test_psnr": 20.0,
                             "test_ssim": 0.5, "trivial_mse": 0.05, "pca_mse": 0.025, "params": int(1000 / rank),
                             "train_seconds": 15.0 * 4 / rank, "epochs": 15})
    levels = dict(SIZE)
    if swap:
        levels[swap[0]], levels[swap[1]] = levels[swap[1]], levels[swap[0]]
    for filters in SIZE:
        original = next(r for r in rows if r["trial_id"] == f"{filters}-z128-0.001")
        original["test_mse"] = levels[filters] / 100
        for seed, shift in ((1, -spread), (2, spread)):
            rows.append({**original, "trial_id": f"{filters}-r{seed}", "repeat_of": original["trial_id"],
                         "test_mse": levels[filters] / 100 + shift})
    rows.append({**rows[0], "trial_id": "failed", "status": "FAILED", "test_mse": None})
    return pd.DataFrame(rows)


def architecture_result(trials: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    from search.records import search_trials

    table = seed_architectures.comparison(search_trials(trials))
    picks = seed_architectures.best_per_filters(table)
    return table, seed_architectures.with_seeds(picks, trials.assign(seconds_per_epoch=trials["train_seconds"] / 15))


def test_architecture_comparison_takes_each_architecture_at_its_better_learning_rate() -> None:
    from search.records import search_trials

    table = seed_architectures.comparison(search_trials(architecture_trials()))
    assert len(table) == 12 and (table["lr"] == 1e-3).all()
    assert table["architecture"].iloc[0] == "64-128-256 k3 z128" and table["test_mse"].iloc[0] == pytest.approx(0.01)
    assert table["seconds_per_epoch"].iloc[0] == pytest.approx(4.0)
    trials = architecture_trials()
    history = pd.DataFrame({"trial_id": [trials["trial_id"].iloc[0]] * 3, "seconds": [9.0, 1.0, 2.0]})  # tracing
    timed = seed_architectures.with_epoch_seconds(trials, history)
    assert timed["seconds_per_epoch"].iloc[0] == 2.0 and timed["seconds_per_epoch"].iloc[1:].isna().all()


def test_each_filter_lists_best_configuration_is_confirmed_over_its_seeds() -> None:
    _, filters = architecture_result(architecture_trials())
    assert filters["filters"].tolist() == list(SIZE)  # smallest first
    assert filters["architecture"].tolist() == [f"{f} k3 z128" for f in SIZE]
    assert filters["n"].tolist() == [3, 3, 3, 3]
    assert filters["test_mse_mean"].tolist() == pytest.approx([0.04, 0.03, 0.02, 0.01])
    assert filters["test_mse_sd"].tolist() == pytest.approx([0.0005] * 4)


def test_architecture_findings_hold_when_every_step_is_beyond_the_seeds_noise() -> None:
    table, filters = architecture_result(architecture_trials())
    deeper, latent, tradeoff, pca = seed_architectures.judge(table, filters)
    assert deeper.verdict == "HOLDS" and "Spearman rho of size vs mean test MSE = -1.00" in deeper.evidence
    assert "64-128-256 0.01 ± 0.0005 (n 3) vs 32-48-64 0.02 ± 0.0005 (n 3)" in deeper.evidence
    assert latent.verdict == "HOLDS" and "n = 12 architectures" in latent.evidence  # a U-shape is not linear
    # Every filter list is both slower and better than the last: all on the front, the knee in the middle.
    assert tradeoff.verdict in ("HOLDS", "DOES NOT HOLD") and "Pareto front" in tradeoff.evidence
    # PCA at 0.025: the two larger lists beat it, the two smaller do not, all beyond their noise.
    assert pca.verdict == "DOES NOT HOLD" and "PCA-128" in pca.evidence
    baseline = seed_architectures.baseline_row(table)
    assert baseline is not None and baseline["test_mse"] == pytest.approx(0.02)
    assert baseline["published_test_mse"] == 0.0179 and baseline["pca_mse"] == 0.025


def test_a_step_inside_the_noise_is_not_distinguishable_and_a_reversed_one_does_not_hold() -> None:
    table, filters = architecture_result(architecture_trials(spread=0.008))  # seeds overlap their neighbours
    assert seed_architectures.judge(table, filters)[0].verdict == "NOT DISTINGUISHABLE"
    table, filters = architecture_result(architecture_trials(swap=("32-64", "32-48-64")))
    deeper = seed_architectures.judge(table, filters)[0]
    assert deeper.verdict == "DOES NOT HOLD" and "32-48-64 0.03" in deeper.evidence


def test_the_trade_off_verdict() -> None:
    # 32-48-64 costs the same time as 32-64 and scores the same within the noise; the knee is 32-64.
    trials = architecture_trials(spread=0.004)
    trials.loc[trials["filters"] == "32-48-64", "train_seconds"] = 20.0
    trials.loc[trials["filters"] == "32-64", "train_seconds"] = 20.0 * 1.1
    trials.loc[trials["filters"] == "64-128-256", "train_seconds"] = 600.0
    for filters, level in (("32-64", 0.0205), ("32-48-64", 0.0200)):
        trials.loc[(trials["filters"] == filters) & ((trials["repeat_of"].notna())
                                                     | (trials["latent_dim"] == 128) & (trials["lr"] == 1e-3)),
                   "test_mse"] = [level - 0.004, level, level + 0.004]
    table, filters = architecture_result(trials)
    tradeoff = seed_architectures._tradeoff(filters)
    assert tradeoff.verdict == "HOLDS", tradeoff.evidence  # 32-48-64 is faster and as good: the knee
    slow = trials.copy()
    slow.loc[slow["filters"] == "32-48-64", "train_seconds"] = 60.0  # 3x the time for the same MSE
    table, filters = architecture_result(slow)
    assert seed_architectures._tradeoff(filters).verdict == "DOES NOT HOLD"


def test_the_table_says_whether_the_models_beat_the_trivial_baseline() -> None:
    table, _ = architecture_result(architecture_trials())
    assert seed_architectures.against_trivial(table).startswith("Every architecture beats")
    assert seed_architectures.against_trivial(table.assign(trivial_mse=0.02)).startswith("3 of 12 architectures")
    none = seed_architectures.against_trivial(table.assign(trivial_mse=0.005))
    assert none.startswith("No architecture beats") and "early in training" in none


def test_findings_are_undecided_with_too_few_results() -> None:
    table, filters = architecture_result(architecture_trials().head(2))
    assert {f.verdict for f in seed_architectures.judge(table, filters)} == {"UNDECIDED"} | (
        {"DOES NOT HOLD", "HOLDS", "NOT DISTINGUISHABLE"} & {seed_architectures._beats_pca(filters).verdict})


def colorization_trials(yuv_rgb: list[float], rgb: tuple[float, ...] = (0.019, 0.020, 0.021)) -> pd.DataFrame:
    """Three colour spaces at two rates (seed 0), the best rate of each repeated with seeds 1 and 2; the RGB test
    MSE of YUV's three seeds is ``yuv_rgb``, RGB's ``rgb``, LAB's 0.02 +- 0.001."""
    rows = []
    levels = {"colorize-rgb": list(rgb), "colorize-yuv": list(yuv_rgb), "colorize-lab": [0.019, 0.020, 0.021]}
    for task, native, trivial_native in (("colorize-rgb", 0.0066, 0.03), ("colorize-yuv", 0.0030, 0.0135),
                                         ("colorize-lab", 0.0025, 0.011)):
        for lr, worse in ((1e-3, 0.0), (3e-3, 0.01)):
            test = levels[task][0] + worse
            rows.append({"trial_id": f"{task}-{lr}", "repeat_of": None, "status": "COMPLETE", "task": task,
                         "lr": lr, "val_mse": test, "native_mse": native + worse, "trivial_native_mse": trivial_native,
                         "test_mse": test, "trivial_mse": 0.03, "skill": 1 - test / 0.03, "test_psnr": 25.0,
                         "test_ssim": 0.8})
        for seed in (1, 2):
            rows.append({**rows[-2], "trial_id": f"{task}-r{seed}", "repeat_of": f"{task}-0.001",
                         "test_mse": levels[task][seed], "native_mse": native * (1 + 0.01 * seed)})
    return pd.DataFrame(rows)


def colorization_verdict(trials: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    from search.records import search_trials

    picks = seed_colorization.best_per_task(search_trials(trials))
    table = seed_colorization.comparison(picks, trials)
    return table, seed_colorization.judge(table)


def test_colorization_verdict_separates_a_real_gain_from_chromas_variance() -> None:
    table, verdict = colorization_verdict(colorization_trials(yuv_rgb=[0.0195, 0.0205, 0.0199]))
    assert table["task"].tolist() == ["colorize-rgb", "colorize-yuv", "colorize-lab"]
    assert table["lr"].tolist() == [1e-3] * 3 and table["n"].tolist() == [3, 3, 3]
    assert table["native_over_trivial"].iloc[0] == pytest.approx(0.0066 * 1.01 / 0.03)
    assert verdict["verdict"] == "NOT DISTINGUISHABLE" and verdict["n"] == [3, 3]
    assert verdict["native_ratio"] == pytest.approx(0.0030 / 0.0066)
    assert verdict["trivial_native_ratio"] == pytest.approx(0.45)
    assert verdict["common_ratio"] == pytest.approx(0.01997 / 0.020, rel=1e-3)
    _, better = colorization_verdict(colorization_trials(yuv_rgb=[0.015, 0.0152, 0.0148]))
    assert better["verdict"] == "HOLDS" and better["p"] < 0.05 and better["common_ratio"] == pytest.approx(0.75)
    _, worse = colorization_verdict(colorization_trials(yuv_rgb=[0.025, 0.0252, 0.0248]))
    assert worse["verdict"] == "DOES NOT HOLD"
    single = colorization_trials(yuv_rgb=[0.015, 0.0152, 0.0148])
    _, one_seed = colorization_verdict(single[single["repeat_of"].isna()])
    assert one_seed["verdict"] == "UNDECIDED" and "one training seed" in one_seed["sentence"]


def reduced(name: str, **params: dict) -> definitions.BenchmarkDefinition:
    """A registered benchmark with fewer grid points (tiny runs), its other settings unchanged."""
    definition = definitions.get(name)
    space = definition.space.to_dict()
    space.update(path=None, params={**space["params"], **params})
    space["samples"] = 1
    for values in space["params"].values():
        space["samples"] *= len(values["choices"])
    return replace(definition, space=definitions.space_from_dict(space))


@pytest.mark.slow
def test_seed_colorization_runs_end_to_end(tmp_path: Path, in_process_ray: None, capsys: pytest.CaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # One learning rate instead of two: the three colour spaces, through the command line, each confirmed with
    # a second training seed.
    small = reduced("seed-colorization", lr={"choices": [1.0e-3], "role": "nuisance"})
    monkeypatch.setitem(definitions.REGISTRY, "seed-colorization", small)
    args = ["run", "seed-colorization", *TINY]
    assert run(main, [*args, "--seeds", "2", "--root", str(tmp_path)]) == 0
    folder = tmp_path / "benchmarks" / "seed-colorization"
    result = json.loads((folder / "result.json").read_text())
    assert result["plan"]["data"] == "embedded" and "CIFAR-10 not found" in result["plan"]["data_note"]
    assert result["plan"]["profile"] == "cpu"
    assert [row["task"] for row in result["comparison"]] == ["colorize-rgb", "colorize-yuv", "colorize-lab"]
    assert [row["n"] for row in result["comparison"]] == [2, 2, 2]
    assert result["verdict"]["verdict"] in ("HOLDS", "DOES NOT HOLD", "NOT DISTINGUISHABLE")
    assert result["verdict"]["n"] == [2, 2]
    assert "flattening" in result["flattening"]["sentence"]  # one epoch: no last third to judge
    table = (folder / "table.md").read_text()
    assert "Native target space vs RGB with the true luminance" in table and "Verdict" in table
    study = load_study(study_paths("colorization", folder))
    assert len(study.trials) == 6 and study.meta["sampler"] == "grid" and study.meta["confirm"]["status"] == "done"
    assert study.trials["repeat_of"].notna().sum() == 3
    assert "python -m analysis.report --root" in capsys.readouterr().out
    # A trial to confirm that the study does not hold is refused before anything is written.
    from search import commands

    before = sorted(p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file())
    with pytest.raises(UsageError, match="no finished search trial nope"):
        commands.prepare_confirm("colorization", str(folder), 1, 1, trial_ids=["nope"])
    assert sorted(p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()) == before
    # Run again: the finished study and its repeats are reused, nothing is trained twice.
    assert run(main, [*args, "--seeds", "2", "--root", str(tmp_path)]) == 0
    assert len(load_study(study_paths("colorization", folder)).trials) == 6


@pytest.mark.slow
def test_seed_architectures_runs_end_to_end_on_a_reduced_grid(tmp_path: Path, in_process_ray: None) -> None:
    definition = reduced("seed-architectures", filters={"choices": ["16-32", "32-48-64"], "role": "scientific"},
                         latent_dim={"choices": [16], "role": "scientific"})
    plan = definition.plan(RunSettings(root=tmp_path, budget=1, limit=8, image_size=8, seeds=2))
    result = seed_architectures.run(plan)
    assert sorted(row["architecture"] for row in result["comparison"]) == ["16-32 k3 z16", "32-48-64 k3 z16"]
    assert [row["n"] for row in result["filter_lists"]] == [2, 2]
    assert result["baseline"] is None  # the published baseline (latent 128) is not in this grid
    verdicts = {f["claim"]: f["verdict"] for f in result["findings"]}
    assert verdicts["no linear relation between latent size and MSE"] == "UNDECIDED"  # one latent size
    assert verdicts["deeper models with more filters reach lower MSE"] in ("HOLDS", "DOES NOT HOLD",
                                                                           "NOT DISTINGUISHABLE")
    assert (tmp_path / "benchmarks" / "seed-architectures" / "tradeoff.png").stat().st_size > 0


def test_the_published_profile_is_the_published_grid_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    definition = definitions.get("seed-architectures")
    cpu = definition.plan(RunSettings(root=tmp_path))
    published = definition.plan(RunSettings(root=tmp_path, profile="published"))
    assert cpu.profile == "cpu" and cpu.image_size == 16 and cpu.definition.space.samples == 12
    assert published.profile == "published" and published.image_size == 32 and published.budget == 15
    assert published.definition.space.samples == 48 and published.seeds == 3
    assert definitions.get("seed-colorization").plan(RunSettings(profile="published")).definition.space.samples == 9
    with pytest.raises(BenchmarkError, match="has the profiles cpu, published"):
        definition.plan(RunSettings(profile="gpu"))
    with pytest.raises(UsageError, match="does not take --profile"):
        definitions.get("engines").plan(RunSettings(profile="published"))
    assert not (tmp_path / "benchmarks").exists()
