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
from results import load_study, study_paths

TINY = ("--budget", "1", "--limit", "8", "--image-size", "8", "--concurrency", "2")


def architecture_trials() -> pd.DataFrame:
    """Four filter lists x kernel 3 x three latent sizes x two learning rates, with known scores."""
    rows = []
    size = {"16-32": 4.0, "32-64": 3.0, "32-48-64": 2.0, "64-128-256": 1.0}
    for filters, rank in size.items():
        for latent, wiggle in ((64, 0.3), (128, 0.0), (256, 0.2)):
            for lr, worse in ((1e-3, 0.0), (1e-4, 1.0)):
                mse = (rank + wiggle + worse) / 100
                rows.append({"status": "COMPLETE", "architecture": f"{filters} k3 z{latent}", "filters": filters,
                             "kernel_size": 3, "latent_dim": latent, "lr": lr, "val_mse": mse, "test_mse": mse,
                             "test_psnr": 20.0, "test_ssim": 0.5, "trivial_mse": 0.05, "params": int(1000 / rank),
                             "train_seconds": 15.0 * 4 / rank, "epochs": 15, "seed": 0})
    rows.append({**rows[0], "status": "FAILED", "test_mse": None})
    return pd.DataFrame(rows)


def test_architecture_comparison_takes_each_architecture_at_its_better_learning_rate() -> None:
    table = seed_architectures.comparison(architecture_trials())
    assert len(table) == 12 and (table["lr"] == 1e-3).all()
    assert table["architecture"].iloc[0] == "64-128-256 k3 z128" and table["test_mse"].iloc[0] == pytest.approx(0.01)
    assert table["seconds_per_epoch"].iloc[0] == pytest.approx(4.0)
    trials = architecture_trials().assign(trial_id=[f"t{i}" for i in range(25)])
    history = pd.DataFrame({"trial_id": ["t0"] * 3, "seconds": [9.0, 1.0, 2.0]})  # the first epoch traces
    timed = seed_architectures.with_epoch_seconds(trials, history)
    assert timed["seconds_per_epoch"].iloc[0] == 2.0 and timed["seconds_per_epoch"].iloc[1:].isna().all()


def test_architecture_findings_on_known_results() -> None:
    table = seed_architectures.comparison(architecture_trials())
    deeper, latent, tradeoff = seed_architectures.judge(table)
    assert deeper.verdict == "holds" and "Spearman rho = -1.00" in deeper.evidence
    assert latent.verdict == "holds" and "n = 12" in latent.evidence  # the U-shape in latent size is not linear
    # Every architecture is both slower and better than the last: all on the front; the knee is in the middle.
    assert tradeoff.verdict in ("holds", "partly") and "Pareto front" in tradeoff.evidence
    baseline = seed_architectures.baseline_row(architecture_trials())
    assert baseline is not None and baseline["test_mse"] == pytest.approx(0.02)
    assert baseline["published_test_mse"] == 0.0179


def test_the_table_says_whether_the_models_beat_the_trivial_baseline() -> None:
    table = seed_architectures.comparison(architecture_trials())
    assert seed_architectures.against_trivial(table).startswith("Every architecture beats")
    assert seed_architectures.against_trivial(table.assign(trivial_mse=0.02)).startswith("3 of 12 architectures")
    none = seed_architectures.against_trivial(table.assign(trivial_mse=0.005))
    assert none.startswith("No architecture beats") and "early in training" in none


def test_findings_are_undecided_with_too_few_results() -> None:
    few = seed_architectures.comparison(architecture_trials().head(2))
    assert {f.verdict for f in seed_architectures.judge(few)} == {"undecided"}


def colorization_trials(yuv_rgb_mse: float) -> pd.DataFrame:
    rows = []
    for task, native, trivial_native in (("colorize-rgb", 0.0066, 0.03), ("colorize-yuv", 0.0030, 0.0135),
                                         ("colorize-lab", 0.0025, 0.011)):
        test = yuv_rgb_mse if task == "colorize-yuv" else 0.02
        for lr, worse in ((1e-3, 0.0), (3e-3, 0.01)):
            rows.append({"status": "COMPLETE", "task": task, "lr": lr, "val_mse": test + worse,
                         "native_mse": native + worse, "trivial_native_mse": trivial_native, "test_mse": test + worse,
                         "trivial_mse": 0.03, "skill": 1 - (test + worse) / 0.03, "test_psnr": 25.0,
                         "test_ssim": 0.8, "seed": 0})
    return pd.DataFrame(rows)


def test_colorization_verdict_separates_a_real_gain_from_chromas_variance() -> None:
    table = seed_colorization.comparison(colorization_trials(yuv_rgb_mse=0.0199))
    assert table["task"].tolist() == ["colorize-rgb", "colorize-yuv", "colorize-lab"]
    assert table["native_over_trivial"].iloc[0] == pytest.approx(0.0066 / 0.03)
    verdict = seed_colorization.judge(table)
    assert verdict["answer"] == "smaller variance of chroma"
    assert verdict["native_ratio"] == pytest.approx(0.0030 / 0.0066)
    assert verdict["trivial_native_ratio"] == pytest.approx(0.45)
    assert verdict["common_ratio"] == pytest.approx(0.995)
    real = seed_colorization.judge(seed_colorization.comparison(colorization_trials(yuv_rgb_mse=0.015)))
    assert real["answer"] == "real gain" and real["common_ratio"] == pytest.approx(0.75)


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
    # One learning rate instead of three: the three colour spaces, through the command line.
    small = reduced("seed-colorization", lr={"choices": [1.0e-3], "role": "nuisance"})
    monkeypatch.setitem(definitions.REGISTRY, "seed-colorization", small)
    assert run(main, ["run", "seed-colorization", *TINY, "--root", str(tmp_path)]) == 0
    folder = tmp_path / "benchmarks" / "seed-colorization"
    result = json.loads((folder / "result.json").read_text())
    assert result["plan"]["data"] == "embedded" and "CIFAR-10 not found" in result["plan"]["data_note"]
    assert [row["task"] for row in result["comparison"]] == ["colorize-rgb", "colorize-yuv", "colorize-lab"]
    assert result["verdict"]["answer"] in ("real gain", "smaller variance of chroma")
    table = (folder / "table.md").read_text()
    assert "Native target space vs RGB with the true luminance" in table and "Verdict" in table
    study = load_study(study_paths("colorization-s0", folder))
    assert len(study.trials) == 3 and study.meta["sampler"] == "grid"
    assert "python -m analysis.report --root" in capsys.readouterr().out


@pytest.mark.slow
def test_seed_architectures_runs_end_to_end_on_a_reduced_grid(tmp_path: Path, in_process_ray: None) -> None:
    definition = reduced("seed-architectures", filters={"choices": ["32-48-64"], "role": "scientific"},
                         kernel_size={"choices": [3], "role": "scientific"},
                         latent_dim={"choices": [128], "role": "scientific"},
                         lr={"choices": [1.0e-3], "role": "nuisance"})
    plan = definition.plan(RunSettings(root=tmp_path, budget=1, limit=8, image_size=8))
    result = seed_architectures.run(plan)
    assert [row["architecture"] for row in result["comparison"]] == ["32-48-64 k3 z128"]
    assert result["baseline"]["architecture"] == "32-48-64 k3 z128" and result["baseline"]["epochs"] == 1
    assert {f["verdict"] for f in result["findings"]} == {"undecided"}
    assert (tmp_path / "benchmarks" / "seed-architectures" / "tradeoff.png").stat().st_size > 0
