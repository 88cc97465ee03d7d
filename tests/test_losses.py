"""Tests for cae.losses: SSIM/PSNR/MSE against scikit-image on real images, conventions, Keras registration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cae import losses
from cae.config import ModelConfig, TrainConfig
from cae.data import load_dataset
from cae.errors import ModelConfigError
from cae.models import build_model
from cae.runtime import keras, tf
from cae.training import compile_model


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """Eight real 32x32 embedded tiles in [-1, 1] and a distorted copy (contrast, brightness, noise, clipping).

    32 px so that SSIM's 11x11 Gaussian window is used as is (it only shrinks below 11 px). The last image
    of the copy is left undistorted, to cover identical images.
    """
    clean = load_dataset("embedded", image_size=32, seed=0, limit=8).test
    rng = np.random.default_rng(0)
    distorted = np.clip(clean * 0.8 + 0.1 + rng.normal(0, 0.1, clean.shape), -1, 1).astype(np.float32)
    distorted[-1] = clean[-1]
    return clean, distorted


def unit(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float64) + 1) / 2


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image SSIM as Wang et al. define it (Gaussian window, sigma 1.5, population covariances) on [0,1]."""
    return np.array(
        [
            structural_similarity(
                unit(x), unit(y), gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
                channel_axis=-1,
            )
            for x, y in zip(a, b, strict=True)
        ]
    )


def test_ssim_matches_scikit_image_on_real_images(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    ours = losses.ssim(tf.constant(a), tf.constant(b)).numpy()
    reference = skimage_ssim(a, b)
    assert ours.shape == (len(a),)
    np.testing.assert_allclose(ours, reference, atol=1e-3)
    assert ours[-1] == pytest.approx(1.0, abs=1e-5)
    assert reference[:-1].max() < 0.9  # the distortion is real, so agreement is not just "both are 1"
    assert losses.ssim_np(a, b) == pytest.approx(float(np.mean(reference)), abs=1e-3)


def test_ssim_np_is_traced_once_per_shape_and_scores_as_the_eager_ssim(pair: tuple[np.ndarray, np.ndarray]) -> None:
    """ssim_np goes through one trace per image shape, kept for the process (batches of any size and float64
    through it too), and gives the eager SSIM's value (to float rounding: the graph's ops may be fused)."""
    a, b = pair
    eager = float(np.mean(losses._ssim_map(tf.constant(a), tf.constant(b)).numpy()))
    assert losses.ssim_np(a, b) == pytest.approx(eager, rel=1e-5)
    call = losses._SSIM_TRACED[tuple(a.shape[1:])]
    single = float(losses._ssim_map(tf.constant(a[:1]), tf.constant(b[:1])).numpy()[0])
    assert losses.ssim_np(a[:1].astype(np.float64), b[:1]) == pytest.approx(single, rel=1e-5)
    assert losses.ssim_np(a, b, batch=2) == pytest.approx(eager, rel=1e-5)
    assert losses._SSIM_TRACED[tuple(a.shape[1:])] is call and call.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("size", [32, 16, 8])
@pytest.mark.parametrize("channels", [3, 2])
def test_separable_ssim_equals_tensorflows_ssim(size: int, channels: int) -> None:
    """Our two 1-D Gaussian passes give tf.image.ssim's number (its 2-D window, shrunk below 11 px)."""
    rng = np.random.default_rng(size + channels)
    a = rng.uniform(-1, 1, (6, size, size, channels)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.4, a.shape), -1, 1).astype(np.float32)
    ours = losses.ssim(tf.constant(a), tf.constant(b)).numpy()
    theirs = tf.image.ssim((a + 1) / 2, (b + 1) / 2, max_val=1.0, filter_size=min(11, size)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert 0.05 < ours.max() < 0.95  # distorted, not trivially equal


def test_psnr_matches_scikit_image_with_data_range_2(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    ours = losses.psnr(tf.constant(a), tf.constant(b)).numpy()
    reference = np.array([peak_signal_noise_ratio(x, y, data_range=2) for x, y in zip(a[:-1], b[:-1], strict=True)])
    np.testing.assert_allclose(ours[:-1], reference, atol=1e-3)
    assert losses.psnr_np(a[:-1], b[:-1]) == pytest.approx(float(np.mean(reference)), abs=1e-3)
    assert losses.psnr_np(a[-1:], b[-1:]) == 100.0  # identical images: a finite, documented ceiling


def test_mse_is_the_per_image_mean_square_on_minus_one_to_one(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    expected = np.mean((a.astype(np.float64) - b) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(losses.mse(tf.constant(a), tf.constant(b)).numpy(), expected, rtol=1e-5)
    assert losses.mse_np(a, b) == pytest.approx(float(np.mean(expected)), rel=1e-9)
    # the squared errors made in one float64 array are those of casting both first, to the bit (any input dtype)
    for x in (a, a.astype(np.float64), a.astype(np.float16)):
        np.testing.assert_array_equal(losses.squared_errors(x, b), (x.astype(np.float64) - b.astype(np.float64)) ** 2)


def test_ssim_loss_is_one_minus_ssim_on_the_unit_range(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = (tf.constant(v) for v in pair)
    np.testing.assert_allclose(losses.ssim_loss(a, b).numpy(), 1 - losses.ssim(a, b).numpy(), atol=1e-6)
    combined = losses.mse_ssim_loss(a, b).numpy()
    np.testing.assert_allclose(combined, losses.mse(a, b).numpy() + losses.SSIM_WEIGHT * losses.ssim_loss(a, b))
    # Computing SSIM directly on [-1, 1] with max_val 2 gives other numbers on the same real images.
    on_wide_range = tf.image.ssim(a, b, max_val=2.0).numpy()
    assert np.abs(on_wide_range - losses.ssim(a, b).numpy()).max() > 0.05


def test_why_the_ssim_range_convention_matters() -> None:
    """SSIM's luminance term (2 mx my + C1) / (mx^2 + my^2 + C1) is not invariant to shifting the data.

    Two flat images (so only the luminance term is left) at 0.5 and 0.6 on [0, 1] are very alike: SSIM 0.98.
    The same images on [-1, 1] have means 0 and 0.2, and with max_val 2 (C1 = (0.01 * 2)^2) SSIM drops to 0.01.
    Mapping to [0, 1] first is the convention of Wang et al. and scikit-image, so that is what we compute.
    """
    mid, lighter = (tf.fill((1, 16, 16, 3), value) for value in (0.0, 0.2))  # 0.5 and 0.6 on [0, 1]
    c1_unit, c1_wide = 0.01**2, (0.01 * 2) ** 2
    expected_unit = (2 * 0.5 * 0.6 + c1_unit) / (0.5**2 + 0.6**2 + c1_unit)
    expected_wide = (2 * 0.0 * 0.2 + c1_wide) / (0.0**2 + 0.2**2 + c1_wide)
    assert float(losses.ssim(mid, lighter)[0]) == pytest.approx(expected_unit, abs=1e-3)
    assert float(tf.image.ssim(mid, lighter, max_val=2.0)[0]) == pytest.approx(expected_wide, abs=1e-3)
    assert expected_unit > 0.98 and expected_wide < 0.011


@pytest.mark.parametrize("loss", ["ssim", "mse+ssim"])
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # never trained: no Adam state
def test_a_compiled_model_with_a_custom_loss_saves_and_loads_back(loss: str, tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(filters=(4, 8), latent_dim=8), 16, 3, 3)
    compile_model(model, 1e-3, loss)
    path = tmp_path / "model.keras"
    model.save(path)

    loaded = keras.models.load_model(path)  # no custom_objects: the losses and metrics are registered
    assert loaded.loss is losses.get_loss(loss)
    x = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 3)).astype(np.float32)
    predicted = loaded.predict(x, verbose=0)
    np.testing.assert_array_equal(predicted, model.predict(x, verbose=0))
    np.testing.assert_array_equal(loaded.loss(x, predicted), model.loss(x, predicted))


def test_custom_functions_are_registered_under_the_package_name() -> None:
    for function in (losses.ssim, losses.psnr, losses.mse, losses.ssim_loss, losses.mse_ssim_loss):
        assert keras.saving.get_registered_name(function) == f"caesweep>{function.__name__}"


def test_unknown_loss_is_refused_with_the_list_of_losses() -> None:
    with pytest.raises(ModelConfigError, match="unknown loss 'l1'; choose one of mse, ssim, mse\\+ssim"):
        losses.get_loss("l1")
    with pytest.raises(ModelConfigError, match="loss 'l1' is unknown"):
        TrainConfig(loss="l1").validate()
