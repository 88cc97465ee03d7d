"""Tests for cae.baselines: the PCA baseline agrees with scikit-learn, is fitted once, and covers every task."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.decomposition import PCA

from cae import baselines
from cae.data import Dataset, load_dataset
from cae.errors import CaesweepError
from cae.losses import mse_np, psnr_np, ssim_np
from cae.tasks import get_task
from cae.training import Prepared, prepare


@pytest.fixture(scope="module")
def small() -> Dataset:
    """Real 8x8 tiles, 300 per split: more training images than values per image (the covariance path)."""
    return load_dataset("embedded", image_size=8, seed=0, limit=300)


@pytest.fixture(scope="module")
def wide() -> Dataset:
    """Real 16x16 tiles, 64 per split: fewer training images than values per image (the Gram-matrix path)."""
    return load_dataset("embedded", image_size=16, seed=0, limit=64)


def sklearn_scores(prepared: Prepared, k: int) -> dict[str, float]:
    """What the baseline must equal: scikit-learn's full-SVD PCA fitted on the training targets, applied to the
    test inputs, mapped to the reference space like a prediction, scored with the same functions."""
    flat = prepared.train.y.reshape(len(prepared.train.y), -1)
    pca = PCA(n_components=k, svd_solver="full").fit(flat)
    x = prepared.test.x
    projected = pca.inverse_transform(pca.transform(x.reshape(len(x), -1))).reshape(x.shape).astype(np.float32)
    pred = prepared.task.to_reference(x, projected)
    truth = prepared.test_reference
    return {"pca_mse": mse_np(pred, truth), "pca_psnr": psnr_np(pred, truth), "pca_ssim": ssim_np(pred, truth)}


@pytest.mark.parametrize(
    ("data", "task", "k"),
    [
        ("small", "reconstruct", 16),  # D = 192 < n = 300
        ("small", "reconstruct-gray", 5),  # D = 64
        ("small", "denoise", 16),  # fitted on the clean images, applied to the noisy test inputs
        ("wide", "reconstruct", 40),  # D = 768 > n = 64: rank 63
        ("wide", "denoise", 63),
    ],
)
def test_pca_scores_equal_scikit_learn(data: str, task: str, k: int, request: pytest.FixtureRequest) -> None:
    prepared = prepare(get_task(task), request.getfixturevalue(data))
    scores = baselines.pca_scores(prepared, k)
    expected = sklearn_scores(prepared, k)
    assert scores["pca_k"] == k
    for key, value in expected.items():
        assert scores[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    assert 0 < scores["pca_mse"] < 1


def test_the_fit_has_the_axes_and_variances_of_scikit_learn(small: Dataset) -> None:
    images = prepare(get_task("reconstruct"), small).train.y
    fit = baselines.fit_pca(images)
    pca = PCA(n_components=20, svd_solver="full").fit(images.reshape(len(images), -1))
    # scikit-learn keeps float32 input in float32, the fit works in float64: they agree to float32 precision.
    np.testing.assert_allclose(fit.mean, pca.mean_, atol=1e-6)
    np.testing.assert_allclose(fit.variances[:20], pca.explained_variance_, rtol=1e-5)
    # Axes agree up to sign: |cos| = 1 between matching rows.
    np.testing.assert_allclose(np.abs(np.sum(fit.components[:20] * pca.components_, axis=1)), 1.0, atol=1e-5)
    assert fit.rank == images[0].size  # 300 images of 192 values: full rank


def test_more_components_than_the_data_supports_are_capped_at_its_rank(wide: Dataset) -> None:
    prepared = prepare(get_task("reconstruct"), wide)
    scores = baselines.pca_scores(prepared, 500)
    assert scores["pca_k"] == 63  # 64 centred training images span 63 directions
    assert scores == baselines.pca_scores(prepared, 63)
    # More components can only lower the error on the training images; on test images it is not guaranteed,
    # but it does fall from 4 to 63 components on real tiles.
    assert baselines.pca_scores(prepared, 4)["pca_mse"] > scores["pca_mse"]


def test_a_sweep_fits_once_per_training_array(small: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoring several k, and the denoise task, reuse the reconstruct fit: the fit runs once."""
    fits: list[int] = []
    real = baselines.fit_pca

    def counted(images: np.ndarray) -> baselines.PCAFit:
        fits.append(len(images))
        return real(images)

    monkeypatch.setattr(baselines, "fit_pca", counted)
    monkeypatch.setattr(baselines, "_FITS", type(baselines._FITS)())
    monkeypatch.setattr(baselines, "_SCORES", {})
    data = load_dataset("embedded", image_size=8, seed=1, limit=200)
    for k in (4, 8, 4):
        baselines.pca_scores(prepare(get_task("reconstruct"), data), k)
    baselines.pca_scores(prepare(get_task("denoise"), data, seed=5), 8)
    assert fits == [200]
    baselines.pca_scores(prepare(get_task("reconstruct-gray"), data), 8)
    assert fits == [200, 200]


def test_colorization_has_no_pca_baseline(small: Dataset) -> None:
    scores = baselines.pca_scores(prepare(get_task("colorize-lab"), small), 16)
    assert set(scores) == set(baselines.PCA_KEYS) and all(math.isnan(v) for v in scores.values())


@pytest.mark.parametrize("k", [0, -3, 2.5, True])
def test_a_bad_component_count_is_refused(small: Dataset, k: object) -> None:
    with pytest.raises(CaesweepError, match="positive number of components"):
        baselines.pca_scores(prepare(get_task("reconstruct"), small), k)  # type: ignore[arg-type]
