"""Tests for cae.training and cae.checkpoint: real (tiny) training, results, early stopping, divergence, resume."""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from cae import checkpoint, training
from cae.config import VAL_METRICS, ModelConfig, RunConfig, TrainConfig
from cae.data import Dataset
from cae.epochs import at_best_epoch
from cae.errors import CaesweepError, ModelConfigError
from cae.losses import mse_np, psnr_np, ssim_np
from cae.runtime import keras
from cae.tasks import Pair, get_task
from cae.training import (
    DivergedError,
    EpochState,
    Prepared,
    TrainResult,
    _EpochCallback,
    prepare,
    train,
)

# 16 train images in batches of 4: four Adam steps per epoch.
STEPS_PER_EPOCH = 4
TINY = RunConfig(
    model=ModelConfig(filters=(8, 16), latent_dim=16),
    train=TrainConfig(task="reconstruct", epochs=2, batch_size=4, lr=3e-3, seed=0),
    image_size=16,
)


def with_train(run: RunConfig, **changes: object) -> RunConfig:
    return replace(run, train=replace(run.train, **changes))


def same_weights(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@dataclass
class Straight:
    """A two-epoch run and what its hook saw after epoch 1 (weights and a checkpoint)."""

    result: TrainResult
    states: list[tuple[int, dict[str, float]]]
    epoch1_weights: list[np.ndarray]
    folder: Path
    light: Path  # the same checkpoint, light (checkpoint.save(..., full=False))


@pytest.fixture(scope="module")
def straight(tiny_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Straight:
    folder = tmp_path_factory.mktemp("checkpoint")
    states: list[tuple[int, dict[str, float]]] = []
    epoch1: list[np.ndarray] = []

    def hook(state: EpochState) -> None:
        states.append((state.epoch, dict(state.record)))
        if state.epoch == 1:
            epoch1.extend(w.copy() for w in state.model.get_weights())
            checkpoint.save(folder, state.model, state.progress, state.best_weights)
            checkpoint.save(folder / "light", state.model, state.progress, state.best_weights, full=False)

    result = train(TINY, tiny_dataset, hooks=[hook])
    return Straight(result, states, epoch1, folder, folder / "light")


@pytest.fixture(scope="module")
def resumed(straight: Straight, tiny_dataset: Dataset) -> TrainResult:
    """The epoch-1 checkpoint resumed to epoch 2, in a global RNG state unlike the one the run had then."""
    keras.utils.set_random_seed(12345)  # what a fresh process (a restarted Ray worker) looks like
    return train(TINY, tiny_dataset, resume_from=str(straight.folder), evaluate_test=False)


def test_a_short_training_lowers_the_loss(straight: Straight) -> None:
    first, second = straight.result.history
    assert second["loss"] < first["loss"]
    assert second["val_loss"] < first["val_loss"]


def test_the_result_reports_history_scores_baseline_and_cost(straight: Straight, tiny_dataset: Dataset) -> None:
    result = straight.result
    assert [r["epoch"] for r in result.history] == [1, 2]
    for record in result.history:
        assert {"loss", "val_loss", "mse", "psnr", "ssim", "val_mse", "val_native_mse", "val_psnr", "val_ssim",
                "seconds"} <= set(record)
        assert all(math.isfinite(v) for v in record.values())
    summary = result.summary()
    for key in ("test_mse", "test_psnr", "test_ssim", "native_mse", "trivial_mse", "trivial_psnr",
                "trivial_ssim", "trivial_native_mse", "skill", "pca_k", "pca_mse", "pca_psnr", "pca_ssim",
                "skill_pca", "pca_matched", "params", "epochs", "best_epoch", "stopped_early", "train_seconds",
                "images_per_second", *VAL_METRICS, "config"):
        assert key in summary, key
    assert summary["skill"] == pytest.approx(1 - summary["test_mse"] / summary["trivial_mse"])
    assert summary["skill_pca"] == pytest.approx(1 - summary["test_mse"] / summary["pca_mse"])
    # The code size is the latent (16), within the rank of 16 training images (15); no skip: matched.
    assert (summary["pca_k"], summary["pca_matched"]) == (15, True)
    assert summary["params"] == result.model.count_params() > 0
    assert (summary["epochs"], summary["best_epoch"], summary["stopped_early"]) == (2, 2, False)
    assert summary["train_seconds"] == pytest.approx(sum(r["seconds"] for r in result.history))
    assert summary["images_per_second"] > 0
    # Every validation metric is that of the kept epoch (the one the test scores come from).
    kept = result.history[result.best_epoch - 1]
    assert {key: summary[key] for key in VAL_METRICS} == {key: kept[key] for key in VAL_METRICS}
    assert summary["config"]["task"] == "reconstruct" and summary["config"]["filters"] == "8-16"
    assert "history" not in summary and result.to_dict()["history"] == result.history
    # The hook saw every epoch, with the same records as the history.
    assert straight.states == [(r["epoch"], r) for r in result.history]


def test_the_test_scores_carry_their_interval_over_the_test_units(straight: Straight, tiny_dataset: Dataset) -> None:
    """test_mse_ci95 is the bootstrap over the test split's regions (not its images: the tiny test split's 16
    tiles come from fewer regions), and skill_ci95 resamples the model's and the baseline's errors together."""
    from cae.data import bootstrap, half_width
    from cae.tasks import down_up

    summary = straight.result.summary()
    prepared = prepare(get_task("reconstruct"), tiny_dataset)
    assert len(np.unique(tiny_dataset.groups["test"])) < len(tiny_dataset.test)
    np.testing.assert_array_equal(prepared.test_groups, tiny_dataset.groups["test"])
    pred = training.predict(straight.result.model, prepared.test.x)
    errors = np.square(np.clip(pred, -1, 1).astype(np.float64) - tiny_dataset.test).mean(axis=(1, 2, 3))
    trivial = np.square(down_up(tiny_dataset.test).astype(np.float64) - tiny_dataset.test).mean(axis=(1, 2, 3))
    by_region = bootstrap(tiny_dataset.groups["test"])
    assert summary["test_mse_ci95"] == pytest.approx(half_width(by_region.means(errors)), rel=1e-6)
    assert summary["test_mse_ci95"] != pytest.approx(half_width(bootstrap(np.arange(16)).means(errors)), rel=1e-3)
    skill = 1 - by_region.means(errors) / by_region.means(trivial)
    assert summary["skill_ci95"] == pytest.approx(half_width(skill), rel=1e-6)
    assert 0 < summary["test_mse_ci95"] < summary["test_mse"] and summary["skill_ci95"] > 0


def test_val_and_test_noise_follow_the_split_not_the_training_seed(tiny_dataset: Dataset) -> None:
    """Denoising: every training seed of one split is scored on the same noisy val and test inputs (and so the
    same baseline); the train noise follows the training seed; a noise level scales the same draws."""
    task = get_task("denoise")
    first, second = prepare(task, tiny_dataset, noise=0.1, seed=0), prepare(task, tiny_dataset, noise=0.1, seed=1)
    np.testing.assert_array_equal(first.val.x, second.val.x)
    np.testing.assert_array_equal(first.test.x, second.test.x)
    assert not np.array_equal(first.train.x, second.train.x)
    assert not np.array_equal(first.val.x, first.test.x[: len(first.val.x)])
    louder = prepare(task, tiny_dataset, noise=0.2, seed=0)
    inside = (np.abs(louder.test.x) < 1) & (np.abs(first.test.x) < 1)  # away from the clipping
    np.testing.assert_allclose((louder.test.x - louder.test.y)[inside], 2 * (first.test.x - first.test.y)[inside],
                               atol=1e-5)


def test_the_same_seed_gives_identical_weights_after_one_epoch(straight: Straight, tiny_dataset: Dataset) -> None:
    one_epoch = train(with_train(TINY, epochs=1), tiny_dataset, evaluate_test=False)
    assert same_weights(one_epoch.model.get_weights(), straight.epoch1_weights)
    timing = {"seconds": one_epoch.history[0]["seconds"]}
    assert one_epoch.history[0] == pytest.approx({**straight.result.history[0], **timing})


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_the_optimizer_made_before_training_trains_bit_for_bit_as_keras_alone(
    tiny_dataset: Dataset, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    # compile_model makes Adam's slots and the compiled metrics' variables eagerly, not inside the first traced
    # step (which then traces once, not twice): the traced training (not the eager path of tiny runs), with a
    # learning-rate schedule, ends with the same weights, optimizer state and logged metrics as Keras's own build,
    # in float32 and in bfloat16.
    import keras.src.backend.tensorflow.trainer as keras_trainer

    from cae.models import build_model
    from cae.precision import policy_scope
    from cae.training import compile_model

    pair = prepare(get_task("reconstruct"), tiny_dataset).train
    states, logs, traces = [], [], []
    step = keras_trainer.TensorFlowTrainer.train_step

    def counted(self: object, data: object) -> object:  # runs once per trace of the train step
        traces[-1] += 1
        return step(self, data)

    monkeypatch.setattr(keras_trainer.TensorFlowTrainer, "train_step", counted)
    for prebuild in (True, False):
        monkeypatch.setattr(training, "PREBUILD_OPTIMIZER", prebuild)
        monkeypatch.setattr(training, "PREBUILD_METRICS", prebuild)
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        traces.append(0)
        with policy_scope(policy):
            model = build_model(TINY.model, TINY.image_size, 3, 3)
            compile_model(model, 1e-3, "mse", "cosine", steps=8)
            assert model.optimizer.built == prebuild
            history = model.fit(pair.x, pair.y, batch_size=4, epochs=2, shuffle=True, verbose=0).history
        states.append([np.asarray(v) for v in (*model.weights, *model.optimizer.variables)])
        logs.append(history)
    assert len(states[0]) == len(states[1]) and all(np.array_equal(a, b) for a, b in zip(*states, strict=True))
    assert logs[0] == logs[1]  # loss, mse, psnr, ssim of both epochs, to the bit
    assert traces == [1, 2]  # Keras alone makes the metrics' variables in its first trace, and is traced again


def test_a_model_taken_from_the_pool_trains_bit_for_bit_as_a_fresh_one(tiny_dataset: Dataset) -> None:
    # A run that takes the compiled model a run of its shape left in the pool (another seed, another learning rate,
    # 12 traced steps each; that run stopped by its hook after 2 of its 3 epochs, as a scheduler stops a trial) ends
    # with the weights, optimizer state, history and test scores a fresh model gets: the kept model's weights,
    # Adam's moments and step count and its learning rate are all reset.
    from cae.training import ModelPool

    class Stopped(Exception):
        pass

    first: list[object] = []

    def stop(state: EpochState) -> None:
        first.append(state.model)
        if state.epoch == 2:
            raise Stopped

    pool = ModelPool()
    with pytest.raises(Stopped):
        train(with_train(TINY, epochs=3, seed=1, lr=1e-3), tiny_dataset, hooks=[stop], pool=pool)
    assert (len(pool), pool.taken) == (1, 0)  # given back all the same
    second = with_train(TINY, epochs=3, seed=2, lr=3e-3)
    keras.backend.clear_session()  # Keras's own: TensorFlow's caches cleared too (the pooled run finds them warm)
    fresh = train(second, tiny_dataset)
    pooled = train(second, tiny_dataset, pool=pool)
    assert pool.taken == 1 and pooled.model is first[0] and len(pool) == 1  # taken, then given back
    assert same_weights(pooled.model.get_weights(), fresh.model.get_weights())
    assert same_weights([np.asarray(v) for v in pooled.model.optimizer.variables],
                        [np.asarray(v) for v in fresh.model.optimizer.variables])
    untimed = [[{k: v for k, v in r.items() if k != "seconds"} for r in run.history] for run in (fresh, pooled)]
    assert untimed[0] == untimed[1]
    assert pooled.test == fresh.test


def test_a_run_of_a_kept_shape_and_seed_builds_no_model_and_trains_as_a_fresh_one(
    tiny_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sweep's trials share their seed: the first run of a shape keeps the weights its build gave and the random
    # generators' state after it; a later run of that shape and seed takes both and builds nothing.
    import random

    from cae.training import ModelPool

    pool = ModelPool()
    train(with_train(TINY, epochs=3, seed=2, lr=1e-3), tiny_dataset, pool=pool)
    generators: list[tuple[object, np.ndarray]] = []

    def hook(state: EpochState) -> None:
        if state.epoch == 1:
            generators.append((random.getstate(), np.random.get_state()[1].copy()))

    second = with_train(TINY, epochs=3, seed=2, lr=3e-3)
    keras.backend.clear_session()
    fresh = train(second, tiny_dataset, hooks=[hook])
    built: list[object] = []
    build = training.build_model
    monkeypatch.setattr(training, "build_model", lambda *args: built.append(args) or build(*args))
    pooled = train(second, tiny_dataset, hooks=[hook], pool=pool)
    assert built == [] and (pool.taken, pool.started) == (1, 1)
    assert generators[0][0] == generators[1][0] and np.array_equal(generators[0][1], generators[1][1])
    assert same_weights(pooled.model.get_weights(), fresh.model.get_weights())
    assert same_weights([np.asarray(v) for v in pooled.model.optimizer.variables],
                        [np.asarray(v) for v in fresh.model.optimizer.variables])
    untimed = [[{k: v for k, v in r.items() if k != "seconds"} for r in run.history] for run in (fresh, pooled)]
    assert untimed[0] == untimed[1] and pooled.test == fresh.test
    third = train(with_train(second, seed=3), tiny_dataset, pool=pool)  # another seed: built, its model kept
    assert len(built) == 1 and pool.taken == 2 and pool.started == 1 and third.model is pooled.model


def test_a_run_trains_on_the_batches_a_new_dataset_gives_where_the_pool_kept_its_dataset(
    tiny_dataset: Dataset,
) -> None:
    # Every iteration of a training dataset draws the same permutations (its shuffle's seeds are fixed when it is
    # made): a dataset kept from the last run of the same arrays, batch size and seed serves the next run as a new
    # one would.
    from cae.runtime import set_random_seed
    from cae.training import ModelPool, training_batches

    prepared = prepare(get_task("reconstruct"), tiny_dataset, seed=2)
    run = with_train(TINY, epochs=3, seed=2, lr=3e-3)
    pool = ModelPool()
    train(with_train(run, lr=1e-3), prepared, pool=pool)
    assert pool._batches is not None
    kept = pool._batches[1]
    keras.backend.clear_session()
    fresh = train(run, prepared)  # a new dataset, a new model
    pooled = train(run, prepared, pool=pool)
    assert pool._batches[1] is kept
    assert same_weights(pooled.model.get_weights(), fresh.model.get_weights())
    untimed = [[{k: v for k, v in r.items() if k != "seconds"} for r in r_.history] for r_ in (fresh, pooled)]
    assert untimed[0] == untimed[1]
    set_random_seed(2)
    new = training_batches(prepared.train.x, prepared.train.y, run.train.batch_size)
    for _ in range(2):  # the kept one, iterated again, as the new one
        assert all(np.array_equal(a[0], b[0]) for a, b in zip(kept, new, strict=True))
    pool.batches(prepared, run.train.batch_size, seed=3)  # another seed: made anew
    assert pool._batches is not None and pool._batches[1] is not kept
    again = prepare(get_task("reconstruct"), tiny_dataset, seed=2)  # the same arrays, made again: their key
    assert pool.batches(again, run.train.batch_size, seed=3) is pool._batches[1]


def test_only_a_run_of_the_same_shape_takes_a_pooled_model(tiny_dataset: Dataset) -> None:
    # Whatever a kept model's traced steps depend on is in the pool's key; a run trained eagerly is not pooled.
    from cae.training import EAGER_MAX_STEPS, ModelPool, _pool_key

    task = get_task("reconstruct")
    prepared = prepare(task, tiny_dataset)
    steps = EAGER_MAX_STEPS + 1
    base = with_train(TINY, epochs=3)
    key = _pool_key(base, task, prepared, "float32", steps)
    assert key is not None
    assert _pool_key(with_train(base, seed=7, lr=1e-2, patience=1), task, prepared, "float32", steps) == key
    others = [
        replace(base, model=replace(base.model, latent_dim=8)),
        replace(base, image_size=32),
        with_train(base, loss="ssim"),
        with_train(base, batch_size=8),
        with_train(base, lr_schedule="cosine"),
    ]
    assert len({key, *(_pool_key(run, task, prepared, "float32", steps) for run in others)}) == 1 + len(others)
    assert _pool_key(base, task, prepared, "mixed_bfloat16", steps) != key
    assert _pool_key(base, get_task("colorize-yuv"), prepare(get_task("colorize-yuv"), tiny_dataset), "float32",
                     steps) != key
    assert _pool_key(base, task, prepared, "float32", EAGER_MAX_STEPS) is None  # eager
    assert _pool_key(base, task, prepared, "mixed_float16", steps) is None  # its loss scale is state of its own
    # A cosine decay's rate and length are constants of the traced step.
    cosine = with_train(base, lr_schedule="cosine")
    assert _pool_key(cosine, task, prepared, "float32", steps) != _pool_key(with_train(cosine, lr=1e-2), task,
                                                                           prepared, "float32", steps)
    pool = ModelPool()
    train(TINY, tiny_dataset, pool=pool, evaluate_test=False)  # 8 steps: trained eagerly
    assert (len(pool), pool.taken) == (0, 0)


def test_the_pool_keeps_the_models_given_last() -> None:
    from cae.training import ModelPool

    pool = ModelPool(size=2)
    models = [keras.Sequential(name=f"m{i}") for i in range(3)]
    for i, model in enumerate(models):
        pool.give(i, model)
    assert len(pool) == 2 and pool.take(0) is None
    assert pool.take(2) is models[2] and pool.take(2) is None and pool.taken == 1
    pool.give(1, models[1])
    pool.give(2, models[2])
    pool.give(3, models[0])
    assert pool.take(1) is None and pool.take(2) is models[2] and pool.take(3) is models[0]


def test_the_pool_keeps_no_more_than_its_bytes() -> None:
    # A kept model holds its variables and its optimizer's state on its device: the pool bounds what they hold
    # together, and does not keep a model that alone holds more.
    from cae.training import ModelPool, state_bytes

    def dense(units: int) -> keras.Model:  # 4 inputs -> units: (4 * units + units) float32 numbers, no optimizer
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(units)])

    small, medium, large = dense(10), dense(20), dense(200)
    assert [state_bytes(m) for m in (small, medium, large)] == [200, 400, 4000]
    pool = ModelPool(size=4, max_bytes=700)
    pool.give("large", large)
    assert len(pool) == 0  # alone more than the pool may hold
    pool.give("small", small)
    pool.give("medium", medium)
    assert (len(pool), pool.bytes) == (2, 600)
    pool.give("small again", dense(10))  # 800 bytes: the least recently given goes
    assert pool.take("small") is None and pool.take("medium") is medium and pool.bytes == 200
    assert pool.dropped == 2  # the large model and the small one: let go, for the worker to free (search.trial)


def test_the_training_batches_are_kerass_own_in_the_same_order_without_autotuning(tiny_dataset: Dataset) -> None:
    # train() feeds fit the batches of Keras's pipeline for arrays with tf.data's autotuning off: two epochs (each
    # shuffled anew, the last batch partial) end with the weights, optimizer state and logs of fit(x, y, shuffle=True)
    # to the bit. A different order or a lost batch would change them.
    from cae.models import build_model
    from cae.training import compile_model, training_batches

    pair = prepare(get_task("reconstruct"), tiny_dataset).train
    batch = 3
    assert len(pair.x) % batch, "the last batch must be partial"
    states, logs = [], []
    for batches in (False, True):
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = build_model(TINY.model, TINY.image_size, 3, 3)
        compile_model(model, 1e-3, "mse")
        if batches:
            data = training_batches(pair.x, pair.y, batch)
            assert data.options().autotune.enabled is False
            history = model.fit(data, epochs=2, shuffle=False, verbose=0).history
        else:
            history = model.fit(pair.x, pair.y, batch_size=batch, epochs=2, shuffle=True, verbose=0).history
        states.append([np.asarray(v) for v in (*model.weights, *model.optimizer.variables)])
        logs.append(history)
    assert int(np.asarray(model.optimizer.iterations)) == 2 * math.ceil(len(pair.x) / batch)
    assert all(np.array_equal(a, b) for a, b in zip(*states, strict=True))
    assert logs[0] == logs[1]


def test_a_checkpoint_holds_weights_optimizer_state_and_progress(straight: Straight) -> None:
    assert {p.name for p in straight.folder.iterdir()} >= {"model.keras", "best.npz", "progress.json"}
    model, progress, best = checkpoint.load(straight.folder)
    assert same_weights(model.get_weights(), straight.epoch1_weights)
    assert int(model.optimizer.iterations.numpy()) == STEPS_PER_EPOCH
    assert best is not None and same_weights(best, straight.epoch1_weights)
    assert progress.epoch == 1 and progress.best_epoch == 1 and progress.wait == 0
    assert progress.history == straight.result.history[:1]
    assert progress.best_val == straight.result.history[0]["val_mse"]  # the monitored metric


def test_resume_continues_at_the_next_epoch_with_the_optimizer_state(
    resumed: TrainResult, straight: Straight
) -> None:
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert resumed.history[0] == straight.result.history[0]  # epoch 1 comes from the checkpoint
    assert resumed.epochs == 2
    # Adam kept counting: 4 steps before the checkpoint, 4 after (a fresh optimizer would be at 4).
    assert int(resumed.model.optimizer.iterations.numpy()) == 2 * STEPS_PER_EPOCH
    assert resumed.train_seconds == pytest.approx(sum(r["seconds"] for r in resumed.history))
    assert resumed.images_per_second > 0 and resumed.test == {}


def test_a_light_checkpoint_resumes_as_the_full_one_bit_for_bit(
    resumed: TrainResult, straight: Straight, tiny_dataset: Dataset
) -> None:
    # The variables alone, without the architecture: the run rebuilds its model and sets them.
    assert {p.name for p in straight.light.iterdir()} == {"state.npz", "best.npz", "progress.json"}
    keras.utils.set_random_seed(12345)  # as for the resumed fixture
    light = train(TINY, tiny_dataset, resume_from=str(straight.light), evaluate_test=False)
    assert same_weights(light.model.get_weights(), resumed.model.get_weights())
    assert same_weights([np.asarray(v) for v in light.model.optimizer.variables],
                        [np.asarray(v) for v in resumed.model.optimizer.variables])
    untimed = [[{k: v for k, v in r.items() if k != "seconds"} for r in run.history] for run in (light, resumed)]
    assert untimed[0] == untimed[1]


def test_a_light_checkpoint_is_resumed_only_by_the_run_that_wrote_it(
    straight: Straight, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    with pytest.raises(checkpoint.CheckpointError, match="is a light checkpoint .* resume it with the run"):
        checkpoint.load(straight.light)  # no model to set the values in
    other = replace(TINY, model=replace(TINY.model, latent_dim=8))
    with pytest.raises(checkpoint.CheckpointError, match="latent_dense|not the size of the run's variable"):
        train(other, tiny_dataset, resume_from=str(straight.light), evaluate_test=False)
    deeper = replace(TINY, model=replace(TINY.model, filters=(8, 16, 16)), image_size=16)
    with pytest.raises(checkpoint.CheckpointError, match="does not hold the variables of this run's model"):
        train(deeper, tiny_dataset, resume_from=str(straight.light), evaluate_test=False)
    broken = tmp_path / "broken"
    shutil.copytree(straight.light, broken)
    (broken / "state.npz").write_bytes(b"PK\x03\x04 not an archive")
    with pytest.raises(checkpoint.CheckpointError, match="cannot be read as a checkpoint"):
        train(TINY, tiny_dataset, resume_from=str(broken), evaluate_test=False)


def test_resume_compares_the_monitor_not_what_the_checkpoint_held(
    straight: Straight, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    """A checkpoint whose best_val is another quantity (one written before the monitor existed held val_loss)
    resumes with the kept epoch's value of the run's own monitor: epoch 2 still improves on epoch 1."""
    folder = tmp_path / "old"
    shutil.copytree(straight.folder, folder)
    state = json.loads((folder / checkpoint.PROGRESS_FILE).read_text())
    state["best_val"] = 0.0  # no MSE is below it: compared as is, it would block every improvement
    (folder / checkpoint.PROGRESS_FILE).write_text(json.dumps(state))
    resumed = train(TINY, tiny_dataset, resume_from=str(folder), evaluate_test=False)
    assert resumed.history[1]["val_mse"] < resumed.history[0]["val_mse"]
    assert resumed.best_epoch == 2


@dataclass
class Stopped:
    """A colorize-yuv run whose weights a hook wrecked after epoch 1, and the best weights it had then."""

    result: TrainResult
    best_after_epoch1: list[np.ndarray]


@pytest.fixture(scope="module")
def stopped(tiny_dataset: Dataset) -> Stopped:
    seen: list[np.ndarray] = []

    def wreck_after_epoch_1(state: EpochState) -> None:
        if state.epoch == 1:
            assert state.best_weights is not None
            seen.extend(w.copy() for w in state.best_weights)
            state.model.set_weights([w * 4.0 for w in state.model.get_weights()])

    run = with_train(TINY, task="colorize-yuv", epochs=4, patience=1)
    result = train(run, tiny_dataset, hooks=[wreck_after_epoch_1], evaluate_test=False)
    return Stopped(result, seen)


def test_early_stopping_restores_the_best_weights(stopped: Stopped) -> None:
    """Epoch 2 starts from wrecked weights and is worse: patience 1 stops there and restores epoch 1."""
    result = stopped.result
    assert result.history[1]["val_mse"] > result.history[0]["val_mse"]  # the monitored metric (default)
    assert (result.epochs, result.best_epoch, result.stopped_early) == (2, 1, True)
    assert same_weights(result.model.get_weights(), stopped.best_after_epoch1)


def test_colorize_history_scores_val_in_rgb_with_the_true_luminance(stopped: Stopped, tiny_dataset: Dataset) -> None:
    """val_mse, val_psnr and val_ssim are reference-space (RGB) scores, like the test scores;
    val_native_mse is the MSE on the UV target, the same quantity as val_loss for the MSE loss."""
    task = get_task("colorize-yuv")
    prepared = prepare(task, tiny_dataset)
    predicted = stopped.result.model.predict(prepared.val.x, verbose=0)  # the restored epoch-1 weights
    first = stopped.result.history[0]
    rgb = task.to_reference(prepared.val.x, predicted)
    assert first["val_mse"] == pytest.approx(mse_np(rgb, prepared.val_reference), rel=1e-5)
    assert first["val_psnr"] == pytest.approx(psnr_np(rgb, prepared.val_reference), rel=1e-5)
    assert first["val_ssim"] == pytest.approx(ssim_np(rgb, prepared.val_reference), rel=1e-4)
    assert first["val_native_mse"] == pytest.approx(mse_np(predicted, prepared.val.y), rel=1e-4)
    assert first["val_native_mse"] == pytest.approx(first["val_loss"], rel=1e-6)
    assert abs(first["val_mse"] - first["val_native_mse"]) > 1e-3


def test_a_nan_loss_raises_diverged_error(tiny_dataset: Dataset) -> None:
    """A NaN target makes the MSE loss NaN whatever the weights and the CPU's kernels compute for the input
    (an inf *input* pixel gives NaN or inf or, after ReLU, nothing at all, depending on both)."""
    good = prepare(get_task("reconstruct"), tiny_dataset)
    y = good.train.y.copy()
    y[:] = np.nan
    bad = replace(good, train=Pair(x=good.train.x, y=y))
    assert isinstance(bad, Prepared)
    with pytest.raises(DivergedError, match="training diverged: loss is nan at epoch 1; lower the learning rate"):
        train(with_train(TINY, task="reconstruct"), bad, evaluate_test=False)
    assert issubclass(DivergedError, CaesweepError)


def test_an_invalid_run_is_refused_before_training(tiny_dataset: Dataset) -> None:
    with pytest.raises(ModelConfigError, match="epochs 0 must be a positive integer"):
        train(with_train(TINY, epochs=0), tiny_dataset)
    with pytest.raises(ModelConfigError, match="depth 5 needs images of at least 32px"):
        train(replace(TINY, model=ModelConfig(filters=(4, 4, 4, 4, 4))), tiny_dataset)


# (validation metrics of three epochs, the monitor, the epoch it must keep)
EPOCHS = [
    {"val_loss": 0.10, "val_mse": 0.50, "val_psnr": 20.0, "val_ssim": 0.60},
    {"val_loss": 0.20, "val_mse": 0.40, "val_psnr": 19.0, "val_ssim": 0.70},
    {"val_loss": 0.15, "val_mse": 0.45, "val_psnr": 21.0, "val_ssim": 0.65},
]


@pytest.mark.parametrize(
    ("monitor", "kept"), [("val_mse", 2), ("val_loss", 1), ("val_native_mse", 2), ("val_psnr", 3), ("val_ssim", 2)]
)
def test_early_stopping_keeps_the_best_epoch_of_the_monitored_metric(
    monitor: str, kept: int, tiny_dataset: Dataset
) -> None:
    """Fed known validation metrics, the callback keeps the epoch that is best for the monitor, in its direction
    (lowest MSE or loss, highest PSNR or SSIM), and at_best_epoch reports that epoch's metrics."""

    class KnownValidation(_EpochCallback):
        def _validate(self) -> dict[str, float]:  # the validation pass, replaced by the known metrics
            metrics = EPOCHS[len(self.progress.history)]
            return {**metrics, "val_native_mse": metrics["val_mse"]}

    prepared = prepare(get_task("reconstruct"), tiny_dataset)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    progress = checkpoint.Progress()
    callback = KnownValidation(prepared, monitor, None, [], progress, None)
    callback.set_model(model)
    for epoch in range(len(EPOCHS)):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"loss": 0.1, "mse": 0.1})
    assert progress.best_epoch == kept and progress.wait == 3 - kept
    reported = at_best_epoch(progress.history, progress.best_epoch)
    expected = {**EPOCHS[kept - 1], "val_native_mse": EPOCHS[kept - 1]["val_mse"], "val_colorfulness": math.nan}
    assert reported == pytest.approx(expected, nan_ok=True)  # colourfulness not measured here: NaN


def test_at_best_epoch_before_any_epoch_is_nan() -> None:
    assert all(math.isnan(v) for v in at_best_epoch([], 0).values())


def test_an_unknown_monitor_is_refused(tiny_dataset: Dataset) -> None:
    with pytest.raises(ModelConfigError, match="monitor 'test_mse' is unknown; choose from"):
        train(with_train(TINY, monitor="test_mse"), tiny_dataset)


def test_a_cosine_schedule_decays_to_zero_over_the_run_and_a_resume_continues_it(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    run = replace(TINY, train=replace(TINY.train, lr_schedule="cosine"))
    lr, total = run.train.lr, run.train.epochs * STEPS_PER_EPOCH
    saved: list[float] = []

    def hook(state: EpochState) -> None:
        if state.epoch == 1:
            checkpoint.save(tmp_path, state.model, state.progress, state.best_weights)
            checkpoint.save(tmp_path / "light", state.model, state.progress, state.best_weights, full=False)
            saved.append(float(state.model.optimizer.learning_rate.numpy()))

    straight = train(run, tiny_dataset, hooks=[hook], evaluate_test=False)
    schedule = straight.model.optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert schedule.decay_steps == total and schedule.initial_learning_rate == pytest.approx(lr)
    assert saved == [pytest.approx(lr / 2, rel=1e-5)]  # half-way: cos(pi/2)
    assert float(straight.model.optimizer.learning_rate.numpy()) == pytest.approx(0.0, abs=1e-12)
    model, progress, _ = checkpoint.load(str(tmp_path))  # the schedule travels with the optimizer
    assert int(model.optimizer.iterations.numpy()) == STEPS_PER_EPOCH
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(lr / 2, rel=1e-5)
    resumed = train(run, tiny_dataset, resume_from=str(tmp_path), evaluate_test=False)
    assert float(resumed.model.optimizer.learning_rate.numpy()) == pytest.approx(0.0, abs=1e-12)
    light = train(run, tiny_dataset, resume_from=str(tmp_path / "light"), evaluate_test=False)  # rebuilt by the run
    assert same_weights(light.model.get_weights(), resumed.model.get_weights())
    with pytest.raises(ModelConfigError, match="lr_schedule 'step' is unknown"):
        replace(TINY.train, lr_schedule="step").validate()


@pytest.mark.parametrize("loss", ["mse", "mse+ssim"])
def test_the_validation_pass_scores_what_keras_evaluate_scores(loss: str, tiny_dataset: Dataset) -> None:
    """The callback's own validation pass (one prediction of the split) gives the loss and metrics that Keras's
    evaluate gives for the same weights, in the task's native space."""
    seen: list[tuple[dict[str, float], list[np.ndarray], float, float]] = []

    def hook(state: EpochState) -> None:
        now = time.perf_counter()
        seen.append((dict(state.record), [w.copy() for w in state.model.get_weights()], state.validation_seconds, now))

    started = time.perf_counter()
    result = train(with_train(TINY, epochs=1, loss=loss), tiny_dataset, hooks=[hook], evaluate_test=False)
    record, weights, validation_seconds, hooked = seen[0]
    # The pass is timed apart from the epoch's training: two disjoint spans between train's start and the hook.
    assert validation_seconds > 0 and record["seconds"] + validation_seconds <= hooked - started
    model = result.model
    assert model is not None
    model.set_weights(weights)
    prepared = prepare(get_task("reconstruct"), tiny_dataset)
    keras_scores = model.evaluate(prepared.val.x, prepared.val.y, batch_size=5, return_dict=True, verbose=0)
    for name in ("loss", "mse", "psnr", "ssim"):
        assert record[f"val_{name}"] == pytest.approx(keras_scores[name], rel=1e-5), name
    assert record["val_native_mse"] == record["val_mse"]


def test_a_short_run_is_trained_eagerly_with_the_updates_of_a_traced_one(
    straight: Straight, tiny_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TINY's 8 optimizer steps cost less run eagerly than Keras's trace of the train step: the same run traced
    (no step run eagerly) ends with the same weights and history, to float rounding."""
    assert straight.result.model.run_eagerly
    monkeypatch.setattr(training, "EAGER_MAX_STEPS", 0)
    traced = train(TINY, tiny_dataset, evaluate_test=False)
    assert not traced.model.run_eagerly
    for eager, graph in zip(straight.result.model.get_weights(), traced.model.get_weights(), strict=True):
        np.testing.assert_allclose(eager, graph, rtol=1e-4, atol=1e-6)
    for eager_epoch, graph_epoch in zip(straight.result.history, traced.history, strict=True):
        timing = {"seconds": eager_epoch["seconds"]}
        assert eager_epoch == pytest.approx({**graph_epoch, **timing}, rel=1e-4)


def test_a_run_that_predicts_enough_batches_traces_its_prediction_once_with_the_eager_numbers(
    tiny_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prediction is traced where it pays (TRACE_PREDICT_MIN_BATCHES): one trace for every batch size of the
    validation passes and the test split, the same predictions as calling the model eagerly; a run with fewer
    batches to predict stays eager."""
    prepared = prepare(get_task("reconstruct"), tiny_dataset)
    monkeypatch.setattr(training, "PREDICT_BATCH", 3)  # the val and test splits in batches of 3 and a remainder
    batches = training.predicted_batches(prepared, epochs=2)
    assert len(prepared.val.x) % 3 and len(prepared.test.x) % 3  # a batch of another size in each pass
    monkeypatch.setattr(training, "TRACE_PREDICT_MIN_BATCHES", batches + 1)
    short = train(TINY, prepared)
    assert short.model not in training._TRACED
    monkeypatch.setattr(training, "TRACE_PREDICT_MIN_BATCHES", batches)
    result = train(TINY, prepared)
    (call,) = training._TRACED[result.model].values()
    assert call.experimental_get_tracing_count() == 1  # type: ignore[attr-defined]
    eager = np.concatenate([np.asarray(result.model(prepared.test.x[i : i + 3], training=False))
                            for i in range(0, len(prepared.test.x), 3)])
    np.testing.assert_allclose(training.predict(result.model, prepared.test.x), eager, rtol=1e-5, atol=1e-6)
    assert result.test["test_mse"] == pytest.approx(short.test["test_mse"], rel=1e-5)  # the same run, the same scores
    assert call.experimental_get_tracing_count() == 1  # type: ignore[attr-defined]
