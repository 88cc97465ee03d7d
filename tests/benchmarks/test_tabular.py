"""The tabular benchmark: the table reads back exactly, the replay reports exactly the table's values (also
through a real Ray Tune + Optuna sweep), and the build trains the grid and resumes where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import results
from benchmarks import analyzers, definitions, tabular
from benchmarks.cli import main
from cae.cli import run
from cae.config import VAL_METRICS
from cae.epochs import at_best_epoch, kept_epoch
from cae.errors import BenchmarkError
from results import reports
from search import commands, records
from search.options import SweepOptions
from spaces import Space
from tests.benchmarks.conftest import TABLE_EPOCHS


def csv_rows(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, float_precision="round_trip")


def test_the_table_reads_back_exactly(tiny_table: Path, tiny_table_space: Space) -> None:
    table = tabular.load_table(tiny_table)
    raw = csv_rows(tiny_table)
    assert table.epochs == TABLE_EPOCHS and len(table.entries) == 8 == tiny_table_space.samples
    for flat in tabular.grid_configs(tiny_table_space, {}):
        entry = table.lookup(flat)
        rows = raw[(raw["filters"] == flat["filters"]) & (raw["latent_dim"] == flat["latent_dim"])
                   & ((raw["lr"] - flat["lr"]).abs() < 1e-12)].sort_values("epoch")
        assert [r["val_mse"] for r in entry.curve] == rows["val_mse"].tolist()
        assert entry.final["test_mse"] == rows["test_mse"].iloc[0]
    assert table.best() == raw["val_mse"].min()
    with pytest.raises(BenchmarkError, match="not in the table"):
        table.lookup({**flat, "latent_dim": 48})


def test_a_partly_written_configuration_is_left_out(tmp_path: Path, tiny_table: Path) -> None:
    cut = tmp_path / "cut.csv"
    cut.write_text("".join(tiny_table.read_text().splitlines(keepends=True)[:-1]))  # the last epoch row is lost
    tabular.meta_path(cut).write_text(tabular.meta_path(tiny_table).read_text())
    assert len(tabular.load_table(cut).entries) == 7


def test_a_missing_table_or_its_json_is_a_benchmark_error_naming_the_build(tmp_path: Path, tiny_table: Path) -> None:
    with pytest.raises(BenchmarkError, match="missing; build it with `python -m benchmarks build-table --data x"):
        tabular.load_table(tmp_path / "none.csv", data="x")
    lone = tmp_path / "lone.csv"
    lone.write_text(tiny_table.read_text())
    with pytest.raises(BenchmarkError, match=r"lone\.json is missing"):
        tabular.load_table(lone)


def replay_of(entry: tabular.Entry, epochs: int = TABLE_EPOCHS, monitor: str = "val_mse") -> tabular.Replay:
    return tabular.Replay(entry, epochs, "node", monitor)


def test_replay_reports_the_records_of_a_real_trial_with_the_table_values(tiny_table: Path) -> None:
    """Read back by the one reader of trial reports, a replay is a real trial's epochs and end: the table's values,
    the validation metrics of the epoch a real run would keep so far (by its monitor), the table's test scores."""
    table = tabular.load_table(tiny_table)
    entry = next(iter(table.entries.values()))
    read = [reports.read(r) for r in tabular.replay_reports(replay_of(entry), TABLE_EPOCHS, train_images=16)]
    assert all(isinstance(r, reports.EpochReport) for r in read[:-1]) and isinstance(read[-1], reports.FinalReport)
    epochs = [reports.epoch_of(r) for r in read]
    assert [e.epoch for e in epochs] == [1, 2, 3]
    for index, epoch in enumerate(epochs):
        so_far = entry.curve[: index + 1]
        kept = kept_epoch(so_far, "val_mse")
        assert epoch.record["val_mse"] == entry.curve[index]["val_mse"]
        assert epoch.kept == at_best_epoch(so_far, kept) and set(epoch.kept) == set(VAL_METRICS)
        assert epoch.costs["train_seconds"] == pytest.approx(sum(r["seconds"] for r in so_far))
        assert epoch.costs["params"] == entry.final["params"]
    final = read[-1]
    assert final.best_epoch == kept_epoch(entry.curve, "val_mse") == entry.final["best_epoch"]
    assert final.scores["test_mse"] == entry.final["test_mse"] and final.objective("val_mse") == min(
        r["val_mse"] for r in entry.curve)
    short = reports.read(tabular.replay_reports(replay_of(entry, epochs=2), TABLE_EPOCHS, train_images=16)[-1])
    assert isinstance(short, reports.FinalReport) and not short.scores  # test scores belong to the full budget


def test_a_replay_keeps_its_epoch_by_the_trials_monitor_and_scores_only_the_tables_epoch() -> None:
    """A real trial keeps the epoch its monitor (the study's first objective) rates best, within MIN_DELTA; the
    replay follows the same rule, not another metric's. Test scores belong to the table's kept epoch: a replay
    that keeps another epoch reports none."""
    curve = tuple({"epoch": e, "val_mse": mse, "val_loss": loss, "val_native_mse": mse, "val_psnr": psnr,
                   "val_ssim": 0.5, "seconds": 1.0, "loss": loss}
                  for e, mse, loss, psnr in ((1, 0.30, 0.10, 10.0), (2, 0.20, 0.30, 12.0), (3, 0.2000001, 0.40, 11.0)))
    entry = tabular.Entry(curve=curve, final={"params": 10, "best_epoch": 2, "test_mse": 0.25})
    by_mse = reports.read(tabular.replay_reports(replay_of(entry), 3, train_images=4)[-1])
    assert isinstance(by_mse, reports.FinalReport)
    assert by_mse.best_epoch == 2 and by_mse.objective("val_mse") == 0.20 and by_mse.scores == {"test_mse": 0.25}
    by_loss = reports.read(tabular.replay_reports(replay_of(entry, monitor="val_loss"), 3, train_images=4)[-1])
    assert isinstance(by_loss, reports.FinalReport)
    assert by_loss.best_epoch == 1 and by_loss.objective("val_loss") == 0.10 and not by_loss.scores
    by_psnr = reports.read(tabular.replay_reports(replay_of(entry, monitor="val_psnr"), 3, train_images=4)[-1])
    assert isinstance(by_psnr, reports.FinalReport) and by_psnr.best_epoch == 2  # higher is better


def test_a_real_sweep_replaying_the_table_returns_its_values_exactly(
    tmp_path: Path, tiny_table: Path, tiny_table_space: Space, in_process_ray: None
) -> None:
    table = tabular.load_table(tiny_table)
    space_file = definitions.write_space(tiny_table_space, tmp_path / "tiny.yaml")
    opts = SweepOptions(study="replay", space=str(space_file), root=str(tmp_path), samples=6, sampler="random",
                        scheduler="none", concurrency=1, seed=1, max_failures=0)
    assert commands.run(opts, trainable=tabular.replay_trainable(table)) == 0
    study = results.load_study(results.study_paths("replay", tmp_path))
    assert (study.trials["status"] == results.COMPLETE).all() and len(study.trials) == 6
    history = csv_rows(tmp_path / "replay" / "history.csv")
    for folder in records.trial_folders(tmp_path / "replay" / "ray"):
        params = json.loads((folder / "params.json").read_text())
        entry = table.lookup({**tiny_table_space.resolve(params)})
        lines = [line for line in records.read_result_lines(folder / "result.json") if "epoch" in line]
        assert [line["val_mse"] for line in lines] == [r["val_mse"] for r in entry.curve]  # bit for bit
        assert [line["val_loss"] for line in lines] == [r["val_loss"] for r in entry.curve]
        assert lines[-1]["final"] and lines[-1]["test_mse"] == entry.final["test_mse"]
        mine = history[history["trial_id"].astype(str) == folder.name.removeprefix("trial_")]
        assert mine["val_mse"].tolist() == [r["val_mse"] for r in entry.curve]
    events = study.history.merge(study.trials[["trial_id", "number"]], on="trial_id").sort_values(["number", "epoch"])
    curves = analyzers.best_so_far(events.assign(method="random", seed=1, value=events["val_mse"]))
    assert analyzers.is_monotone(curves) and len(curves) == 6 * TABLE_EPOCHS


@pytest.mark.slow
def test_build_table_trains_the_grid_then_repeats_the_best_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    space = tmp_path / "grid.yaml"
    space.write_text(
        "samples: 2\nfixed: {task: reconstruct, data: embedded, image_size: 8, limit: 8, max_epochs: 2, "
        "patience: null, batch_size: 8}\nparams:\n  latent_dim: {choices: [4, 8]}\n  filters: {choices: ['2-4']}\n"
    )
    out = tmp_path / "t.csv"
    argv = ["build-table", "--space", str(space), "--out", str(out), "--repeats", "2", "--repeat-configs", "1"]
    assert run(main, [*argv, "--max-configs", "1"]) == 0
    first = csv_rows(out)
    assert len(first) == 2 and first["epoch"].tolist() == [1, 2] and (first["latent_dim"] == 4).all()
    assert (first["seed"] == 0).all()
    assert "flattened:" not in capsys.readouterr().out  # not complete: no summary yet
    assert run(main, argv) == 0  # resumes: trains the missing configuration, then repeats the best one
    printed = capsys.readouterr().out
    assert "1 of 2 configurations present, training 1" in printed
    assert "repeats: the best 1 configurations with training seeds 1: training 1" in printed
    assert "flattened:" in printed and "noise: 1 configurations x 2 training seeds" in printed
    rows = csv_rows(out)
    pd.testing.assert_frame_equal(rows.iloc[:2], first)
    table = tabular.load_table(out)
    assert len(table.entries) == 2 and table.meta["configs_built"] == 2 and table.meta["train_images"] == 8
    assert all(e.final["test_mse"] > 0 and e.final["params"] > 0 for e in table.entries.values())
    best = min(table.entries, key=lambda k: min(r["val_mse"] for r in table.entries[k].curve))
    assert list(table.repeats) == [best] and table.repeats[best][0] is table.entries[best]
    assert rows[rows["seed"] == 1].shape[0] == 2  # the repeat's two epochs, seed 1
    assert table.meta["summary"]["noise"]["seeds"] == 2 and table.meta["build_seconds"] > 0
    assert table.meta["settings"]["split_seed"] == 0 and table.meta["settings"]["repeat_seeds"] == [1]
    assert run(main, argv) == 0  # complete: nothing trained, the table unchanged
    assert "training 0" in capsys.readouterr().out and csv_rows(out).equals(rows)
    assert run(main, [*argv, "--epochs", "3"]) == 2  # other settings: refused, never mixed
    assert "was built with other settings" in capsys.readouterr().err


def _entry(values: list[float], skill: float = 0.1, test_mse: float = 0.01) -> tabular.Entry:
    curve = tuple({"epoch": i + 1, "val_mse": v, "seconds": 1.0} for i, v in enumerate(values))
    return tabular.Entry(curve=curve, final={"skill": skill, "test_mse": test_mse, "trivial_mse": 0.02})


def test_the_summary_says_which_good_configurations_still_improve_and_the_noise() -> None:
    flat, rising = [0.5, 0.2, 0.11, 0.1, 0.1, 0.1], [0.5, 0.3, 0.25, 0.2, 0.15, 0.12]
    assert tabular.last_third_gain(_entry(flat)) == pytest.approx(0.0)  # best after epoch 4 vs after epoch 6
    assert tabular.last_third_gain(_entry([0.5, 0.2, 0.11, 0.11, 0.1, 0.1])) == pytest.approx(1 / 11)
    assert tabular.last_third_gain(_entry(rising)) == pytest.approx(0.4)  # 0.2 -> 0.12
    entries = {("a",): _entry(flat), ("b",): _entry(rising), ("c",): _entry([0.9] * 6, skill=-0.5),
               ("d",): _entry([0.8] * 6, skill=-0.2)}
    repeats = {("a",): (entries[("a",)], _entry([0.5, 0.2, 0.12, 0.11, 0.11, 0.11], test_mse=0.012))}
    table = tabular.Table(axes=("x",), epochs=6, entries=entries, meta={}, repeats=repeats)
    summary = tabular.summarize(table)
    assert summary["flat"]["configs"] == 1 and summary["flat"]["flattened"] == 1  # the best quarter: "a"
    assert summary["baseline"]["beat_trivial"] == 2 and summary["baseline"]["best_skill"] == 0.1
    assert summary["noise"]["configs"] == 1 and summary["noise"]["val_mse_rel_sd_median"] == pytest.approx(
        pd.Series([0.1, 0.11]).std() / 0.105)
    assert summary["noise"]["main_seed_gap_median"] == pytest.approx(0.1 / 0.11 - 1)
    assert not any(line.startswith("warning") for line in tabular.summary_lines(summary))
    # The best configuration still improving: the build warns with the measured gain.
    slow = tabular.Table(axes=("x",), epochs=6, entries={("b",): _entry(rising), ("c",): _entry([0.9] * 6)}, meta={})
    lines = tabular.summary_lines(tabular.summarize(slow))
    assert lines[-1].startswith("warning: 1 of the best 1 configurations are still improving (by up to 40.0%")
    assert "noise" not in tabular.summarize(slow)
