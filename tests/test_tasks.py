"""Tests for cae.colors and cae.tasks: colour round trips, task pairs, trivial baselines, reference-space scoring."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from cae import colors
from cae.data import Dataset
from cae.errors import TaskError
from cae.losses import mse_np
from cae.tasks import TASKS, Task, down_up, get_task

COLORIZE = ("colorize-rgb", "colorize-yuv", "colorize-lab")


@pytest.fixture(scope="module")
def rgb(tiny_dataset: Dataset) -> np.ndarray:
    """The 48 real 16x16 images of the tiny embedded dataset, RGB in [-1, 1]."""
    return np.concatenate([tiny_dataset.train, tiny_dataset.val, tiny_dataset.test])


@pytest.fixture(scope="module")
def corners() -> np.ndarray:
    """The eight corners of the RGB cube (black, the primaries, the secondaries, white) as a 1x8 image."""
    return np.array(list(itertools.product((-1.0, 1.0), repeat=3)), dtype=np.float32).reshape(1, 1, 8, 3)


# --- colour spaces ---------------------------------------------------------------------------------------


def test_yuv_round_trip_is_exact(rgb: np.ndarray) -> None:
    random = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 3)).astype(np.float32)
    for images in (rgb, random):
        assert np.abs(colors.yuv_to_rgb(colors.rgb_to_yuv(images)) - images).max() < 1e-5


def test_yuv_scaling_fills_minus_one_to_one_on_the_rgb_cube(corners: np.ndarray) -> None:
    yuv = colors.rgb_to_yuv(corners)
    assert np.abs(yuv).max() <= 1 + 1e-5
    # Y spans black to white; U peaks at blue/yellow and V at red/cyan, at exactly +-1 by construction.
    for channel in range(3):
        assert yuv[..., channel].max() == pytest.approx(1.0, abs=1e-4)
        assert yuv[..., channel].min() == pytest.approx(-1.0, abs=1e-4)


def test_gray_is_bt601_luma_scaled_to_minus_one_to_one(corners: np.ndarray) -> None:
    gray = colors.rgb_to_gray(corners)[0, 0, :, 0]
    weights = np.array([0.299, 0.587, 0.114])
    expected = [2 * float(weights[np.array(c) > 0].sum()) - 1 for c in itertools.product((-1, 1), repeat=3)]
    np.testing.assert_allclose(gray, expected, atol=1e-6)


def test_lab_round_trip_is_exact_on_real_images(rgb: np.ndarray) -> None:
    lab = colors.rgb_to_lab(rgb)
    assert lab.dtype == np.float32 and lab.shape == rgb.shape
    assert np.abs(lab).max() <= 1.0  # L/50-1 and ab/128 keep real photographs inside [-1, 1]
    assert np.abs(colors.lab_to_rgb(lab) - rgb).max() < 1e-3


def test_lab_scaling_maps_black_and_white_to_the_ends_of_l(corners: np.ndarray) -> None:
    lab = colors.rgb_to_lab(corners)[0, 0]
    black, white = lab[0], lab[-1]
    np.testing.assert_allclose(black, [-1, 0, 0], atol=1e-4)
    np.testing.assert_allclose(white, [1, 0, 0], atol=1e-4)


def test_gray_replicated_as_colour_keeps_its_luminance_and_has_no_chroma(rgb: np.ndarray) -> None:
    gray = colors.rgb_to_gray(rgb)
    as_colour = colors.gray_to_rgb(gray)
    assert as_colour.shape == rgb.shape
    np.testing.assert_allclose(colors.rgb_to_gray(as_colour), gray, atol=1e-6)
    # The published BT.601 chroma rows sum to 1e-5 and 0, not exactly 0: gray has |U| of order 1e-5.
    assert np.abs(colors.rgb_to_yuv(as_colour)[..., 1:]).max() < 1e-4


# --- input/target pairs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TASKS)
def test_every_task_pair_has_the_declared_shapes_channels_and_range(name: str, rgb: np.ndarray) -> None:
    task = get_task(name)
    pair = task.make_pair(rgb, noise=0.1, seed=0)
    n, size = len(rgb), rgb.shape[1]
    assert pair.x.shape == (n, size, size, task.in_channels)
    assert pair.y.shape == (n, size, size, task.out_channels)
    for array in (pair.x, pair.y):
        assert array.dtype == np.float32
        assert array.min() >= -1.0 and array.max() <= 1.0
    assert task.to_reference(pair.x, pair.y).shape == task.reference(rgb).shape


def test_task_pairs_hold_the_documented_arrays(rgb: np.ndarray) -> None:
    gray, yuv, lab = colors.rgb_to_gray(rgb), colors.rgb_to_yuv(rgb), colors.rgb_to_lab(rgb)
    expected = {
        "reconstruct": (rgb, rgb),
        "reconstruct-gray": (gray, gray),
        "colorize-rgb": (gray, rgb),
        "colorize-yuv": (yuv[..., :1], yuv[..., 1:]),
        "colorize-lab": (lab[..., :1], lab[..., 1:]),
        "denoise": (rgb, rgb),  # without noise
    }
    assert set(expected) == set(TASKS)
    for name, (x, y) in expected.items():
        pair = get_task(name).make_pair(rgb)
        np.testing.assert_array_equal(pair.x, x, err_msg=name)
        np.testing.assert_array_equal(pair.y, y, err_msg=name)


def test_denoise_noise_is_seeded_clipped_and_leaves_the_target_clean(rgb: np.ndarray) -> None:
    task = get_task("denoise")
    a, b = task.make_pair(rgb, noise=0.1, seed=3), task.make_pair(rgb, noise=0.1, seed=3)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, task.make_pair(rgb, noise=0.1, seed=4).x)
    np.testing.assert_array_equal(a.y, rgb)
    # Where no clipping happened the noise is Gaussian with the requested std.
    inside = np.abs(a.x) < 1
    assert np.std((a.x - rgb)[inside]) == pytest.approx(0.1, rel=0.1)
    # Strong noise is clipped to [-1, 1], so many pixels sit exactly on the bounds.
    loud = task.make_pair(rgb, noise=1.0, seed=3).x
    assert loud.min() == -1.0 and loud.max() == 1.0
    assert np.mean(np.abs(loud) == 1.0) > np.mean(np.abs(rgb) == 1.0) + 0.1


# --- trivial baselines -----------------------------------------------------------------------------------


def test_down_up_averages_2x2_blocks_and_repeats_them() -> None:
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    expected = np.array([[2.5, 2.5, 4.5, 4.5], [2.5, 2.5, 4.5, 4.5], [10.5, 10.5, 12.5, 12.5],
                         [10.5, 10.5, 12.5, 12.5]], dtype=np.float32)
    np.testing.assert_array_equal(down_up(image)[0, ..., 0], expected)


@pytest.mark.parametrize("name", ["reconstruct", "reconstruct-gray"])
def test_reconstruction_baseline_is_2x_down_up(name: str, rgb: np.ndarray) -> None:
    task = get_task(name)
    pair = task.make_pair(rgb)
    trivial = task.trivial(pair.x, pair.y)
    np.testing.assert_allclose(trivial, down_up(pair.x), atol=1e-6)
    truth = task.reference(rgb)
    # A real baseline: far better than predicting mid-gray, far from perfect.
    assert 0 < mse_np(trivial, truth) < 0.5 * mse_np(np.zeros_like(truth), truth)


def test_denoise_baseline_is_the_noisy_input(rgb: np.ndarray) -> None:
    task = get_task("denoise")
    pair = task.make_pair(rgb, noise=0.2, seed=0)
    np.testing.assert_array_equal(task.trivial(pair.x, pair.y), pair.x)
    assert mse_np(task.trivial(pair.x, pair.y), rgb) > 0


def test_colorize_baselines_are_zero_chroma_gray_images(rgb: np.ndarray) -> None:
    gray_as_colour = colors.gray_to_rgb(colors.rgb_to_gray(rgb))
    trivial = {}
    for name in COLORIZE:
        task = get_task(name)
        pair = task.make_pair(rgb)
        trivial[name] = task.trivial(pair.x, pair.y)
        assert trivial[name].shape == rgb.shape
        # Every baseline is a neutral gray: R = G = B.
        assert np.abs(trivial[name] - trivial[name][..., :1]).max() < 1e-4, name
    np.testing.assert_array_equal(get_task("colorize-yuv").native_trivial(*_xy("colorize-yuv", rgb)), 0)
    np.testing.assert_array_equal(get_task("colorize-lab").native_trivial(*_xy("colorize-lab", rgb)), 0)
    np.testing.assert_array_equal(get_task("colorize-rgb").native_trivial(*_xy("colorize-rgb", rgb)), gray_as_colour)
    # RGB and YUV give the same baseline, the BT.601 luma as gray, up to the published U row summing to 1e-5
    # instead of 0 (so zero chroma maps back to R = G = B only within ~4e-5).
    np.testing.assert_allclose(trivial["colorize-rgb"], gray_as_colour, atol=1e-4)
    np.testing.assert_allclose(trivial["colorize-yuv"], gray_as_colour, atol=1e-4)
    np.testing.assert_allclose(trivial["colorize-rgb"], trivial["colorize-yuv"], atol=1e-4)


def test_lab_baseline_is_a_different_gray_so_trivial_scores_differ(rgb: np.ndarray) -> None:
    """LAB's zero-chroma gray keeps the CIE lightness L*, not the BT.601 luma Y of the other two colour spaces.

    So the three colorize tasks do NOT share one trivial RGB prediction: the LAB baseline differs from the
    YUV one by far more than gamut rounding, and so do their trivial MSEs (the denominators of ``skill``).
    """
    lab_task, yuv_task = get_task("colorize-lab"), get_task("colorize-yuv")
    lab_trivial = lab_task.trivial(*_xy("colorize-lab", rgb))
    yuv_trivial = yuv_task.trivial(*_xy("colorize-yuv", rgb))
    np.testing.assert_allclose(colors.rgb_to_lab(lab_trivial)[..., 0], colors.rgb_to_lab(rgb)[..., 0], atol=1e-3)
    assert np.abs(lab_trivial - yuv_trivial).max() > 0.1
    lab_mse, yuv_mse = mse_np(lab_trivial, rgb), mse_np(yuv_trivial, rgb)
    assert abs(lab_mse - yuv_mse) / yuv_mse > 0.005


def _xy(name: str, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pair = get_task(name).make_pair(rgb)
    return pair.x, pair.y


# --- the reference space -----------------------------------------------------------------------------------


def test_colorize_rgb_scoring_joins_the_true_luminance(rgb: np.ndarray) -> None:
    task = get_task("colorize-rgb")
    images = rgb * 0.5  # keep the shifted prediction inside the RGB cube, so clipping plays no part
    pair = task.make_pair(images)
    wrong_luminance = images + 0.3  # the same shift on R, G and B changes Y only
    assert mse_np(wrong_luminance, pair.y) == pytest.approx(0.09, rel=1e-4)  # bad in the native space
    scored_wrong = task.to_reference(pair.x, wrong_luminance)
    scored_right = task.to_reference(pair.x, pair.y)
    np.testing.assert_allclose(scored_wrong, scored_right, atol=1e-4)
    assert mse_np(scored_wrong, task.reference(images)) < 1e-9


@pytest.mark.parametrize("name", COLORIZE)
def test_colorize_scoring_takes_luminance_from_the_input(name: str, rgb: np.ndarray) -> None:
    task = get_task(name)
    pair = task.make_pair(rgb)
    darker = task.to_reference(pair.x - 0.2, pair.y)
    assert colors.rgb_to_gray(darker).mean() < colors.rgb_to_gray(rgb).mean() - 0.05


@pytest.mark.parametrize("name", TASKS)
def test_to_reference_clips_wild_predictions(name: str, rgb: np.ndarray) -> None:
    task = get_task(name)
    pair = task.make_pair(rgb)
    wild = np.random.default_rng(0).normal(0, 5, pair.y.shape).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scikit-image notes the out-of-gamut LAB values it clips
        ref = task.to_reference(pair.x, wild)
    assert ref.dtype == np.float32 and ref.min() >= -1.0 and ref.max() <= 1.0


class _Perfect:
    """Stands in for a Keras model whose prediction is exactly the target (called on consecutive batches)."""

    def __init__(self, y: np.ndarray) -> None:
        self.y = y
        self.seen = 0

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        batch = self.y[self.seen : self.seen + len(x)]
        self.seen += len(x)
        return batch


@pytest.mark.parametrize("name", TASKS)
def test_perfect_prediction_scores_mse_0_and_skill_1(name: str, tiny_dataset: Dataset) -> None:
    from cae.training import evaluate, prepare

    prepared = prepare(get_task(name), tiny_dataset, noise=0.1, seed=0)
    scores = evaluate(_Perfect(prepared.test.y), prepared)
    assert scores["native_mse"] == 0.0
    assert scores["test_mse"] < 1e-9  # LAB goes through a float round trip
    assert scores["test_ssim"] == pytest.approx(1.0, abs=1e-4)
    assert scores["test_psnr"] > 60
    assert scores["trivial_mse"] > 1e-4
    assert scores["skill"] == pytest.approx(1.0, abs=1e-6)
    # No error, whichever test images are drawn: no interval either.
    assert scores["test_mse_ci95"] < 1e-9 and scores["skill_ci95"] < 1e-6


def test_unknown_task_is_refused_with_the_list_of_tasks() -> None:
    with pytest.raises(TaskError, match="unknown task 'colourize'") as info:
        get_task("colourize")
    for name in TASKS:
        assert name in str(info.value)


def test_tasks_are_consistent() -> None:
    assert set(TASKS) == {"reconstruct", "reconstruct-gray", *COLORIZE, "denoise"}
    for name, task in TASKS.items():
        assert isinstance(task, Task) and task.name == name
        assert task.kind in ("reconstruct", "colorize", "denoise")
