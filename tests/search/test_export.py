"""``python -m search export``: the chosen trial's model out of a study, loadable by plain Keras in a process that
never imports caesweep, as a SavedModel, with its card; and every bad input refused before anything is written.

The studies are written through the ``results`` API as a sweep writes them (tests.analysis.built_studies), with
real Keras models in ``models/``: one trained for 2 epochs on the embedded tiles (its trial row holds its real
scores, as the sweep's final report would) and untrained ones beside it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cae.card import CARD_FILE, MODEL_FILE, ONNX_FILE, SAVED_MODEL_DIR
from cae.data import Dataset
from results import COMPLETE, FAILED, load_study, study_paths
from search import export
from tests.analysis.built_studies import trial, write_study
from tests.conftest import in_process

SIZE = 16
TASK = "colorize-yuv"
COLOUR = {"task": TASK, "image_size": SIZE, "filters": "8-16", "kernel_size": 3, "latent_dim": 16, "skip": True}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Dataset) -> Path:
    """Three studies: ``colour`` (t01 trained and best; t00 untrained; t02 failed; t03 'best' without a kept model),
    ``confirmed`` (search confirm re-trained t00 and t01: t01 is best by the mean of its fresh seeds, t00 by its
    own run) and ``failed`` (no trial finished)."""
    from cae.config import ModelConfig, RunConfig, TrainConfig
    from cae.models import build_model
    from cae.training import train

    root = tmp_path_factory.mktemp("results")
    run = RunConfig(model=ModelConfig(filters=(8, 16), latent_dim=16, skip=True),
                    train=TrainConfig(task=TASK, epochs=2, batch_size=32), image_size=SIZE)
    result = train(run, tiny_dataset)
    real = {k: v for k, v in result.summary().items() if k != "config"}
    rows = [
        trial(0, COMPLETE, val_mse=0.9, **COLOUR),  # far worse than 2 epochs of training
        trial(1, COMPLETE, **{**real, **COLOUR}),
        trial(2, FAILED, error="DivergedError: loss became nan", **COLOUR),
        trial(3, COMPLETE, val_mse=0.001, **COLOUR),
    ]
    write_study(root, "colour", rows, task=TASK, image_size=SIZE, space={"name": "t", "fixed": {"task": TASK}})
    models = study_paths("colour", root).models_dir
    models.mkdir()
    result.model.save(models / "t01.keras")  # as a trial keeps it: compiled, with caesweep's loss in it
    build_model(run.model, SIZE, 1, 2).save(models / "t00.keras")

    confirmed = [trial(0, COMPLETE, val_mse=0.02, **COLOUR), trial(1, COMPLETE, val_mse=0.03, **COLOUR)]
    for n, (of, val) in enumerate([("t00", 0.05), ("t00", 0.06), ("t01", 0.031), ("t01", 0.029)]):
        confirmed.append({**trial(10 + n, COMPLETE, val_mse=val, **COLOUR), "repeat_of": of, "seed": 1 + n})
    write_study(root, "confirmed", confirmed, task=TASK, image_size=SIZE)
    folder = study_paths("confirmed", root).models_dir
    folder.mkdir()
    for row in confirmed:
        (folder / f"{row['trial_id']}.keras").write_bytes((models / "t00.keras").read_bytes())

    write_study(root, "failed", [trial(0, FAILED, error="boom", **COLOUR)], task=TASK, image_size=SIZE)
    return root


def run_export(root: Path, *argv: str):
    return in_process(export.main, "--root", str(root), *argv)


def card(folder: Path) -> dict:
    return json.loads((folder / CARD_FILE).read_text())


def test_the_best_trial_is_exported_whole_with_its_card(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "best"
    done = run_export(root, "--study", "colour", "--to", str(out))
    assert done.returncode == 0, done.stderr
    assert "exported trial t01 of study colour (colorize-yuv" in done.stdout
    assert f"python -m cae.apply --model {out}" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == [CARD_FILE, MODEL_FILE, SAVED_MODEL_DIR]
    assert [p.name for p in tmp_path.iterdir()] == ["best"]  # no staging folder left beside it
    c = card(out)
    assert (c["task"], c["image_size"], c["pixel_range"], c["precision"]) == (TASK, SIZE, [-1.0, 1.0], "float32")
    assert "2Y - 1" in c["input"]["encoding"] and "U / 0.436 and V / 0.615" in c["output"]["encoding"]
    assert c["input"]["shape"] == [None, SIZE, SIZE, 1] and c["output"]["shape"] == [None, SIZE, SIZE, 2]
    assert c["trial"]["trial_id"] == "t01" and c["study"]["name"] == "colour"
    # t03 scores better but kept no model; t01 is the best of the two that did.
    assert c["trial"]["chosen_as"] == (
        "#1 of 2 finished trials with a kept model, by val_mse (min), one training seed each"
    )
    rows = load_study(study_paths("colour", root)).trials.set_index("trial_id")
    for group, key in (("test", "test_mse"), ("test", "test_mse_ci95"), ("test", "test_colorfulness"),
                       ("baselines", "trivial_mse"), ("validation", "val_mse")):
        assert c["scores"][group][key] == pytest.approx(rows.loc["t01", key])
    assert c["scores"]["test"]["truth_colorfulness"] > c["scores"]["test"]["test_colorfulness"] > 0
    assert c["scores"]["seeds"] is None and "bootstrap" in c["scores"]["intervals"]
    assert c["configuration"]["filters"] == "8-16" and c["configuration"]["latent_dim"] == 16
    assert c["exported"]["versions"]["keras"] and c["exported"]["versions"]["tensorflow"]


def test_plain_keras_loads_it_without_caesweep_and_predicts_what_caesweep_does(root: Path, tmp_path: Path) -> None:
    """Plain Keras, the SavedModel and (with --onnx) ONNX Runtime, each in a process that never imports caesweep."""
    from cae.card import load_keras_model

    out = tmp_path / "best"
    assert run_export(root, "--study", "colour", "--to", str(out), "--onnx").returncode == 0
    onnx = card(out)["onnx"]
    assert card(out)["files"]["onnx"] == ONNX_FILE and onnx["opset"] == 17 and onnx["input"] == "image"
    assert 0 <= onnx["max_abs_difference"] <= export.ONNX_TOLERANCE
    x = np.random.default_rng(0).uniform(-1, 1, (4, SIZE, SIZE, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    kept = load_keras_model(study_paths("colour", root).model_path("t01"))
    expected = np.asarray(kept(x, training=False))
    script = textwrap.dedent(f"""
        import sys
        import numpy as np, keras, tensorflow as tf
        x = np.load({str(tmp_path / 'x.npy')!r})
        model = keras.models.load_model({str(out / MODEL_FILE)!r}, compile=False)
        served = tf.saved_model.load({str(out / SAVED_MODEL_DIR)!r})
        np.save({str(tmp_path / 'keras.npy')!r}, np.asarray(model(x, training=False)))
        np.save({str(tmp_path / 'served.npy')!r}, np.asarray(served.serve(x)))
        import onnxruntime
        session = onnxruntime.InferenceSession({str(out / ONNX_FILE)!r}, providers=["CPUExecutionProvider"])
        np.save({str(tmp_path / 'onnx.npy')!r}, session.run(None, {{"image": x}})[0])
        mine = sorted(m for m in sys.modules if m.split('.')[0] in ('cae', 'search', 'results', 'analysis', 'caesweep'))
        print('caesweep modules imported:', mine)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "caesweep modules imported: []" in done.stdout
    np.testing.assert_allclose(np.load(tmp_path / "keras.npy"), expected, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), expected, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "onnx.npy"), expected, atol=1e-4)


def test_onnx_without_its_packages_is_one_line_and_nothing_written(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on an install without the ``onnx`` extra: tf2onnx is not found."""
    real = export.importlib.util.find_spec
    monkeypatch.setattr(export.importlib.util, "find_spec",
                        lambda name, *a: None if name == "tf2onnx" else real(name, *a))
    proc = run_export(root, "--study", "colour", "--to", str(tmp_path / "out"), "--onnx")
    assert proc.returncode == 2 and "pip install 'caesweep[onnx]'" in proc.stderr and "tf2onnx" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_rank_or_a_trial_id_chooses_another(root: Path, tmp_path: Path) -> None:
    assert run_export(root, "--study", "colour", "--rank", "2", "--to", str(tmp_path / "second")).returncode == 0
    assert card(tmp_path / "second")["trial"]["trial_id"] == "t00"
    (tmp_path / "empty").mkdir()  # an existing empty folder is fine
    assert run_export(root, "--study", "colour", "--trial", "t00", "--to", str(tmp_path / "empty")).returncode == 0
    assert card(tmp_path / "empty")["trial"]["chosen_as"] == "asked for by its trial id (COMPLETE)"


def test_confirm_repeats_rank_by_their_mean(root: Path, tmp_path: Path) -> None:
    done = run_export(root, "--study", "confirmed", "--to", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    c = card(tmp_path / "out")
    # t00 won the search (0.02 against 0.03), but its fresh seeds average 0.055 against t01's 0.030.
    assert c["trial"]["trial_id"] == "t01"
    assert c["trial"]["chosen_as"] == ("#1 of 2 configurations re-trained by search confirm, by the mean val_mse "
                                       "(min) over 2 fresh training seeds")
    seeds = c["scores"]["seeds"]
    assert seeds["n"] == 2 and seeds["val_mse_mean"] == pytest.approx(0.030)
    assert seeds["val_mse_ci95"] == pytest.approx(12.706 * 0.001414214 / np.sqrt(2), rel=1e-3)
    assert seeds["trial_ids"] == ["t12", "t13"] and seeds["variance"] == "training seed"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--study", "failed"], "study failed has no finished trial with a kept model"),
        (["--study", "colour", "--trial", "nope"], "study colour has no trial 'nope' (its trials: t00, t01, t02, t03)"),
        (["--study", "colour", "--trial", "t02"], "trial t02 of study colour has no kept model (FAILED"),
        (["--study", "colour", "--rank", "3"], "--rank 3: study colour ranks only 2 trials with a kept model"),
        (["--study", "colour", "--rank", "0"], "--rank must be at least 1"),
        (["--study", "nowhere"], "study 'nowhere' does not exist"),
        (["--study", "colour", "--trial", "t00", "--rank", "1"], "not allowed with argument"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    root: Path, tmp_path: Path, argv: list[str], expected: str
) -> None:
    out = tmp_path / "out"
    done = run_export(root, *argv, "--to", str(out))
    assert done.returncode == 2 and expected in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and done.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_a_target_that_is_not_empty_is_refused(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = run_export(root, "--study", "colour", "--to", str(out))
    assert done.returncode == 2 and "exists and is not empty" in done.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_cae_apply_runs_the_export_on_a_photograph(root: Path, tmp_path: Path) -> None:
    from PIL import Image
    from skimage import data

    from cae import apply

    assert run_export(root, "--study", "colour", "--to", str(tmp_path / "model")).returncode == 0
    (tmp_path / "in").mkdir()
    Image.fromarray(data.coffee()[::4, ::4]).save(tmp_path / "in" / "coffee.jpg")
    done = in_process(apply.main, "--model", str(tmp_path / "model"), "--input", str(tmp_path / "in"), "--output",
                      str(tmp_path / "out"), "--compare")
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / "out" / "coffee.jpg") as result:
        assert (result.size, result.format) == ((150, 100), "JPEG")
    assert (tmp_path / "out" / "coffee.jpg.compare.png").is_file()
