"""``python -m cae.apply``: tiles that blend back exactly, the luminance a colouriser keeps, batches across images,
and real runs of tiny real Keras models on real JPEG/PNG files (names, sizes and formats kept, unreadable files
and bombs skipped and counted, sheets, and every bad input refused before anything is written)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cae import apply, colors
from cae.card import CARD_FILE, FORMAT, MODEL_FILE, conventions
from cae.tasks import get_task
from tests.conftest import in_process
from tests.test_data_bombs import png_bomb

SIZE = 8  # the tiny models' image size


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny real CAEs (untrained: applying them is what is tested, not their skill) saved as .keras files, and an
    exported-style folder (model.keras + its card) of the colorize-yuv one."""
    from cae.config import ModelConfig
    from cae.models import build_model
    from cae.runtime import keras

    folder = tmp_path_factory.mktemp("models")
    out = {}
    keras.utils.set_random_seed(0)
    for name in ("colorize-yuv", "colorize-rgb", "denoise", "reconstruct-gray"):
        task = get_task(name)
        model = build_model(ModelConfig(filters=(4,), latent_dim=4), SIZE, task.in_channels, task.out_channels)
        if task.kind == "colorize":  # an untrained colouriser predicts almost no chroma: give it a cast
            model.get_layer("output").bias.assign([0.4, -0.3] if task.out_channels == 2 else [0.5, 0.0, -0.5])
        out[name] = folder / f"{name}.keras"
        model.save(out[name])
    exported = folder / "exported"
    exported.mkdir()
    (exported / MODEL_FILE).write_bytes(out["colorize-yuv"].read_bytes())
    card = {"format": FORMAT, **conventions(get_task("colorize-yuv"), SIZE)}
    (exported / CARD_FILE).write_text(json.dumps(card))
    out["exported"] = exported
    return out


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A colour JPEG (40x30), a gray PNG (21x48), a colour PNG in a sub-folder, a text file, a truncated PNG and a
    PNG bomb (81 megapixels of zeros in a few KB)."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(3)
    smooth = np.kron(rng.integers(0, 256, (5, 4, 3)), np.ones((8, 8, 1))).astype(np.uint8)[:40, :30]
    Image.fromarray(smooth).save(root / "colour.jpg", quality=95)
    Image.fromarray(rng.integers(0, 256, (21, 48), dtype=np.uint8)).save(root / "gray.png")
    Image.fromarray(rng.integers(0, 256, (13, 9, 3), dtype=np.uint8)).save(root / "sub" / "small.png")
    (root / "notes.txt").write_text("not an image\n")
    Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(root / "broken.png")
    (root / "broken.png").write_bytes((root / "broken.png").read_bytes()[:600])  # cut short
    png_bomb(root / "bomb.png", 9_000, 9_000)
    return root


def run(*argv: str):
    return in_process(apply.main, *argv)


# --- tiles ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 33, 2), (40, 17, 3), (8, 8, 1), (16, 5, 3)])
def test_tiles_blend_back_to_the_image_exactly(shape: tuple[int, int, int]) -> None:
    image = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    tiles, grid = apply.tile(image, SIZE)
    assert tiles.shape == (grid[0] * grid[1], SIZE, SIZE, shape[-1])
    # Every pixel is covered by two tiles per axis whose weights sum to one: an identity model gives it back.
    np.testing.assert_allclose(apply.blend(tiles, grid, *shape[:2]), image, atol=2e-6)


def test_the_window_of_tiles_half_apart_sums_to_one() -> None:
    w = apply.window(16)
    np.testing.assert_allclose(w[:8, :8] + w[8:, :8] + w[:8, 8:] + w[8:, 8:], 1.0, atol=1e-6)
    assert w.min() > 0


def test_a_colouriser_keeps_the_luminance_exactly_and_stays_in_gamut() -> None:
    rng = np.random.default_rng(1)
    predicted = rng.uniform(-1.5, 1.5, (64, 64, 3)).astype(np.float32)  # wild chroma, out of gamut too
    gray = rng.uniform(-1, 1, (64, 64, 1)).astype(np.float32)
    kept = apply.keep_luminance(predicted, gray)
    np.testing.assert_allclose(colors.rgb_to_gray(kept), gray, atol=1e-5)
    assert kept.min() >= -1 - 1e-6 and kept.max() <= 1 + 1e-6
    inside = np.clip(predicted, -0.2, 0.2) + 0.0  # chroma that fits is kept as it is
    same_y = apply.keep_luminance(inside, colors.rgb_to_gray(inside))
    np.testing.assert_allclose(same_y, inside, atol=1e-5)


def test_tiles_go_through_the_model_in_full_batches_across_images() -> None:
    rng = np.random.default_rng(2)
    jobs = [
        apply._Job(Path(f"{i}.png"), "PNG", np.zeros((1, 1, 3), np.float32), np.zeros((1, 1, 1), np.float32),
                   rng.normal(size=(n, 2, 2, 1)).astype(np.float32), (1, n))
        for i, n in enumerate([5, 1, 12, 3])
    ]
    sizes: list[int] = []

    def call(x: np.ndarray) -> np.ndarray:
        sizes.append(len(x))
        return x * 2

    done = list(apply.predicted(iter(jobs), call, batch=4))
    assert [job.relative for job in done] == [job.relative for job in jobs]
    assert sizes == [4, 4, 4, 4, 4, 1]  # 21 tiles: full batches, the last one smaller
    for job in done:
        np.testing.assert_array_equal(np.concatenate(job.predictions), job.tiles * 2)


# --- real runs ------------------------------------------------------------------------------------------------


def test_a_folder_keeps_names_sizes_and_formats_and_counts_what_it_skips(
    models: dict[str, Path], photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = run("--model", str(models["exported"]), "--input", str(photos), "--output", str(out), "--batch-size", "7")
    assert done.returncode == 0, done.stderr
    assert "wrote 3 colorize-yuv outputs" in done.stdout
    assert "skipped 3 of 6 files (1 corrupt, 1 larger than 64,000,000 pixels, 1 not JPEG/PNG)" in done.stdout
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["colour.jpg", "gray.png", "sub/small.png"]
    for name in written:
        with Image.open(photos / name) as given, Image.open(out / name) as result:
            assert (result.size, result.format, result.mode) == (given.size, given.format, "RGB")


def test_a_colourised_photograph_keeps_its_luminance(models: dict[str, Path], photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for name in ("colorize-yuv", "colorize-rgb"):
        done = run("--model", str(models[name]), "--task", name, "--input", str(photos / "gray.png"),
                   "--output", str(out / name))
        assert done.returncode == 0, done.stderr
        gray = np.asarray(Image.open(photos / "gray.png"), dtype=np.float64)
        result = np.asarray(Image.open(out / name / "gray.png"), dtype=np.float64)
        assert np.abs(result[..., 0] - result[..., 2]).mean() > 10  # it has colour now
        luminance = result @ np.array([0.299, 0.587, 0.114])
        assert np.abs(luminance - gray).max() <= 0.5 + 1e-6  # 8-bit rounding of R, G and B only


def test_compare_sheets_show_input_output_and_the_colour_original(
    models: dict[str, Path], photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = run("--model", str(models["exported"]), "--input", str(photos), "--output", str(out), "--compare")
    assert done.returncode == 0, done.stderr
    with Image.open(out / "colour.jpg.compare.png") as colour, Image.open(out / "gray.png.compare.png") as gray:
        assert colour.size == (3 * 30 + 2 * 4, 40 + 14)  # input | output | original, labelled
        assert gray.size == (2 * 48 + 4, 21 + 14)  # a gray photograph has no original colour to show
        panel = np.asarray(colour)[14:, :30].astype(int)
        assert np.abs(panel[..., 0] - panel[..., 2]).max() <= 1  # the input panel is what the model saw: gray
        original = np.asarray(colour)[14:, 2 * 34 :].astype(int)
        assert np.abs(original[..., 0] - original[..., 2]).mean() > 10


def test_other_tasks_give_their_own_outputs(models: dict[str, Path], photos: Path, tmp_path: Path) -> None:
    gray = run("--model", str(models["reconstruct-gray"]), "--input", str(photos / "sub"), "--output",
               str(tmp_path / "gray"))
    assert gray.returncode == 0, gray.stderr  # 1 -> 1 channel: reconstruct-gray without --task
    with Image.open(tmp_path / "gray" / "small.png") as result:
        assert (result.mode, result.size) == ("L", (9, 13))
    ambiguous = run("--model", str(models["denoise"]), "--input", str(photos), "--output", str(tmp_path / "d"))
    assert ambiguous.returncode == 2
    assert "maps 3 channels to 3, which reconstruct and denoise do: pass --task" in ambiguous.stderr
    done = run("--model", str(models["denoise"]), "--task", "denoise", "--input", str(photos / "colour.jpg"),
               "--output", str(tmp_path / "d"))
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / "d" / "colour.jpg") as result:
        assert (result.format, result.size) == ("JPEG", (30, 40))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (lambda m, p, o: ["--model", str(m["exported"]), "--task", "denoise", "--input", str(p), "--output", str(o)],
         "does colorize-yuv, not --task denoise"),
        (lambda m, p, o: ["--model", str(m["colorize-yuv"]), "--task", "denoise", "--input", str(p), "--output",
                          str(o)], "so it does not do denoise (3 to 3); it does colorize-yuv or colorize-lab"),
        (lambda m, p, o: ["--model", str(m["exported"]), "--input", str(p / "missing"), "--output", str(o)],
         "does not exist"),
        (lambda m, p, o: ["--model", str(m["exported"]), "--input", str(p), "--output", str(p / "out")],
         "is inside the input folder"),
        (lambda m, p, o: ["--model", str(m["exported"]), "--input", str(p / "gray.png"), "--output", str(p)],
         "would replace the input"),
        (lambda m, p, o: ["--model", str(p), "--input", str(p), "--output", str(o)], "has no model.json"),
        (lambda m, p, o: ["--model", str(p / "gray.png"), "--input", str(p), "--output", str(o)],
         "cannot be loaded as a Keras model"),
        (lambda m, p, o: ["--model", str(m["exported"]), "--task", "paint", "--input", str(p), "--output", str(o)],
         "unknown task 'paint'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    models: dict[str, Path], photos: Path, tmp_path: Path, argv: Callable[..., list[str]], expected: str
) -> None:
    before = sorted(p for p in photos.rglob("*"))
    out = tmp_path / "out"
    done = run(*argv(models, photos, out))
    assert done.returncode == 2 and expected in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and done.stdout == ""
    assert not out.exists() and sorted(p for p in photos.rglob("*")) == before
