"""Tests for the test-set interval (cae.data.bootstrap) and the units a Dataset carries for it."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from cae.data import Dataset, bootstrap, half_width, load_dataset
from cae.errors import DataError


def test_each_resample_draws_as_many_units_as_the_split_has() -> None:
    groups = np.repeat([5, 9, 2, 7], [3, 1, 4, 2])  # four units of 3, 1, 4 and 2 images, ids in any order
    resampled = bootstrap(groups, resamples=200)
    assert resampled.counts.shape == (200, 4)
    assert (resampled.counts.sum(axis=1) == 4).all()
    sizes = np.array([4, 3, 2, 1])  # units numbered by sorted id: 2, 5, 7, 9
    np.testing.assert_array_equal(resampled.images, resampled.counts @ sizes)
    # A resample's mean is over its images: unit 9 (one image of value 1) drawn k times gives k / images.
    values = (groups == 9).astype(float)
    np.testing.assert_allclose(resampled.means(values), resampled.counts[:, 3] / resampled.images)


def test_the_resamples_are_fixed_so_every_model_on_a_split_is_resampled_alike() -> None:
    groups = np.arange(50)
    np.testing.assert_array_equal(bootstrap(groups).counts, bootstrap(groups).counts)


def test_a_constant_error_has_no_interval_and_a_missing_one_is_nan() -> None:
    resampled = bootstrap(np.repeat(np.arange(30), 4))
    assert half_width(resampled.means(np.full(120, 0.25))) < 1e-8
    assert np.isnan(half_width(np.array([0.1, np.inf, 0.2])))
    assert np.isnan(half_width(np.array([])))


def test_units_not_images_are_resampled() -> None:
    """40 units of 100 identical images: resampled by unit, the interval is that of 40 values; by image (as if
    the 4,000 were independent) it would be sqrt(100) = 10 times narrower."""
    rng = np.random.default_rng(0)
    per_image = np.repeat(rng.normal(1.0, 0.2, 40), 100)
    by_unit = half_width(bootstrap(np.repeat(np.arange(40), 100)).means(per_image))
    by_image = half_width(bootstrap(np.arange(4000)).means(per_image))
    assert by_unit / by_image > 5
    # The unit interval matches the normal approximation for a mean of 40 values (1.96 standard errors).
    assert by_unit == pytest.approx(1.96 * per_image[::100].std() / np.sqrt(40), rel=0.2)


# --- the units of a Dataset ------------------------------------------------------------------------------


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 8, 8, 3)).astype(np.float32)


def test_a_dataset_without_units_has_one_unit_per_image() -> None:
    data = Dataset("x", images(4), images(3, 1), images(2, 2), "test")
    for split, n in (("train", 4), ("val", 3), ("test", 2)):
        np.testing.assert_array_equal(data.groups[split], np.arange(n))
        assert not data.groups[split].flags.writeable
    assert data.origins == {}


def test_units_are_checked_and_named_by_the_fingerprint() -> None:
    train, val, test = images(4), images(3, 1), images(2, 2)
    with pytest.raises(DataError, match="the units of val must be one integer per image"):
        Dataset("x", train, val, test, "test", groups={"val": np.zeros(2, dtype=np.int64)})
    with pytest.raises(DataError, match="one integer per image"):
        Dataset("x", train, val, test, "test", groups={"test": np.zeros(2)})
    alone = Dataset("x", train, val, test, "test")
    together = Dataset("x", train, val, test, "test", groups={"test": np.array([7, 7])})
    assert together.fingerprint != alone.fingerprint  # the same pixels, another interval: not the same data
    copy = pickle.loads(pickle.dumps(together))  # how it reaches a Ray worker
    np.testing.assert_array_equal(copy.groups["test"], [7, 7])
    assert copy.fingerprint == together.fingerprint


def test_the_noise_seed_follows_the_split_content_only() -> None:
    data = Dataset("x", images(4), images(3, 1), images(2, 2), "test")
    same = Dataset("renamed", images(4), images(3, 1), images(2, 2), "other sentence")
    other = Dataset("x", images(4), images(3, 1), images(2, 3), "test")
    assert data.noise_seed("val") == same.noise_seed("val") and data.noise_seed("test") == same.noise_seed("test")
    assert data.noise_seed("val") != data.noise_seed("test")
    assert other.noise_seed("test") != data.noise_seed("test")
    with pytest.raises(DataError, match="unknown split"):
        data.noise_seed("holdout")


def test_the_embedded_test_units_are_its_regions() -> None:
    data = load_dataset("embedded", image_size=32, seed=0)
    units = np.unique(data.groups["test"])
    assert 20 <= len(units) <= 32  # 15 % of 174 regions
    assert not set(units.tolist()) & set(data.groups["train"].tolist())
    limited = load_dataset("embedded", image_size=32, seed=0, limit=40)
    assert len(limited.groups["test"]) == 40 and set(limited.groups["test"].tolist()) <= set(units.tolist())
