"""Train one configuration: Adam, early stopping on a validation metric, a per-epoch hook, test evaluation.

The loop is Keras's own ``model.fit`` over whole-dataset arrays (no per-batch Python), so it runs as fast
as a bare ``fit`` (``benchmarks/`` measures the ratio). Per epoch a callback scores the validation split (one
prediction of it, in place of Keras's validation pass), records the history, applies
early stopping with state that survives a restart, refuses to go on after a NaN/inf loss, and calls the
caller's hooks (the sweep reports to Ray Tune and checkpoints through them).

Early stopping and the best-weights restore watch ``TrainConfig.monitor`` (default ``val_mse``, the sweep's
objective), so the kept model is the one the objective ranks, by the rule of :mod:`cae.epochs`, whose
``at_best_epoch`` gives the validation metrics of that epoch, the ones to report next to its test scores.

Scores: ``val_mse`` / ``val_psnr`` / ``val_ssim`` and the ``test_*`` scores are computed in the task's
*reference* space (RGB for colorization, after joining the true luminance), so tasks compare fairly;
``val_native_mse`` / ``native_mse`` are the MSE in the task's own target space (what single-task reports
quote). Every test score sits next to two baselines on the same images: the task's trivial one (``trivial_*``,
``skill = 1 - test_mse / trivial_mse``) and, for reconstruction and denoising, PCA with as many components as
the model's latent units (``pca_*``, ``skill_pca``, see :mod:`cae.baselines`). ``test_mse_ci95`` and
``skill_ci95`` say how much those two depend on which images are in the test set (a bootstrap over its
independent units, :func:`cae.data.bootstrap`); it costs well under a millisecond per model on the embedded
data (the per-image errors are summed per unit once, and only the unit sums are resampled).
"""

from __future__ import annotations

import math
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cae import checkpoint, precision
from cae.baselines import pca_scores
from cae.colorfulness import colorfulness
from cae.config import ModelConfig, RunConfig
from cae.data import Bootstrap, Dataset, bootstrap, half_width
from cae.epochs import MIN_DELTA, as_loss, at_best_epoch
from cae.errors import CaesweepError
from cae.losses import METRICS, get_loss, mse_np, psnr_np, squared_errors, ssim_np
from cae.models import build_model
from cae.optimizers import FusedAdam
from cae.runtime import keras, random_state, set_random_seed, set_random_state, tf
from cae.tasks import Pair, Task, get_task

PREDICT_BATCH = 512
# Prediction (each epoch's validation pass, the test scores) is traced once per model where that pays. Called
# eagerly, a small CAE predicts 512 32x32 images in 0.11 s (16-32) / 0.14-0.15 s (16-32-64); traced, where Grappler
# fuses each convolution with its bias and activation, in 0.067 / 0.093 s, after a trace of 0.15-0.21 s with its
# first call (medians, 2 CPU cores, AMD EPYC, float32; the 32-48-64 z128 model on 1,229 images: 0.58-0.63 s eager,
# 0.43-0.46 s traced, 0.27-0.30 s traced in bfloat16 against 0.41-0.44 s eager). Three calls on 512 images, the
# trace included: 0.36 s eager vs 0.31 s traced (16-32), 0.475 vs 0.423 (16-32-64; medians of 7). A run that
# predicts at least this many batches traces; a shorter one (a smoke run, a tiny test sweep) stays eager.
TRACE_PREDICT_MIN_BATCHES = 3
# The models whose prediction is traced: their traced calls by input (an image's shape, the dtype), made at the first
# prediction of each.
_TRACED: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Callable[[Any], Any]]] = weakref.WeakKeyDictionary()
# Keras traces the train step of every new model and then runs a step in a few milliseconds; run eagerly, a small
# CAE's step costs far more and nothing is traced: the same updates (to float rounding, tested). A run with at most
# this many optimizer steps left (a smoke run, a tiny test sweep) is trained eagerly; any real run is traced.
# Measured (2 CPU cores, AMD EPYC, 8-16 z16 at 16 px, build + train + test scores, medians of 3 alternating rounds),
# since the step is traced once (compile_model): 4 steps 0.52 s eager vs 0.81 s traced, 8 steps 0.72-0.80 vs
# 0.78-0.90, 12 steps 1.15 vs 0.96, 16 steps 1.23-1.31 vs 0.83-0.91. (Before, when every step was traced twice,
# eager paid up to ~18 steps and this was 12.)
EAGER_MAX_STEPS = 8
PREBUILD_OPTIMIZER = True  # compile_model makes the optimizer's variables before the first step (see there)
PREBUILD_METRICS = True  # compile_model makes the compiled metrics' variables before the first step (see there)
# Adam's update by TensorFlow's fused kernel (cae.optimizers.FusedAdam) instead of Keras's generic ops: the same
# update to float rounding, and the train step traces faster. Measured (2 CPU cores, AMD EPYC, a 16-32-64 z64 model,
# 512 images, batch 64, 8 fits each, two alternating rounds of processes): the first epoch (8 steps, the trace
# included) 0.81-0.91 s instead of 1.07-1.25 s; the later epochs 0.34-0.40 s either way. A 32-48-64 z128 model on 2,048
# images, epochs 2-4, 3 alternating rounds: float32 863 images/s instead of 790, mixed_bfloat16 1,292 instead of 1,252.
FUSED_ADAM = True
# XLA (model.compile(jit_compile=True)) on these 2 CPU cores, the same CAEs timed with and without it, 2,048 random
# images, batch 64, the median of the timed epochs over alternating rounds (a shared, busy machine):
# 32-48-64 k3 z128 at 32 px, 5 rounds: float32 379 images/s without, 114 with (each round 0.24-0.76x);
# mixed_bfloat16 614 without, 125 with (0.11-0.38x); its first epoch (tracing and compiling) 9-30 s against 4-8.
# 8-16 z64 at 16 px, 3 rounds: float32 2,116 vs 1,028, mixed_bfloat16 3,523 vs 1,210. XLA never paid on a CPU, so
# it is off there; on a GPU (not measured here) Keras's own default, "auto", turns it on.
XLA_ON_CPU = False
# tf.data's autotuning, off for the training batches (:func:`training_batches`). Keras feeds arrays to ``fit``
# through a tf.data pipeline with an autotuned parallel gather and prefetch; with autotuning on, destroying an epoch's
# iterator (at the next epoch or at the end of ``fit``) stalled the training thread for 0.23-0.29 s in about half the
# fits of a 2-epoch run (2 CPU cores, AMD EPYC, TensorFlow 2.21: 20 fits of a 16-32-64 z64 model on 512 images,
# 10 epochs or ends of fit of 20 stalled; with autotuning off, none of 20, and the second epoch took 0.31-0.36 s
# every time instead of 0.33-0.67). On more images it also slowed whole epochs: the same model on 8,192 images,
# epochs 2-3 of 3 alternating rounds, 1,505 images/s with autotuning off (1,320-1,608) against 806 with it on (791 in
# 4 of 6 epochs, 1,499-1,623 in the other 2): its threads compete with training's on 2 cores. The batches are the
# same, in the same order (tested).
DATA_AUTOTUNE = False
# How many compiled models a :class:`ModelPool` keeps (a trial worker's: see there), the least recently used given up
# first, and how many bytes their variables and optimizer state may hold together: a kept model holds them on its
# device (a GPU's memory, where the trial has one) until the pool lets it go. Measured with Adam's state: a 16-32-64
# z64 model at 32 px holds 2.5 MB, 32-48-64 z128 4.4 MB, 64-128-256 z256 at 64 px 111 MB, and at 128 px 400 MB (not
# kept).
POOL_SIZE = 4
POOL_MAX_BYTES = 128 * 2**20
BATCHES_MAX_BYTES = 64 * 2**20  # the training arrays whose batches a ModelPool keeps (see ModelPool.batches)


class ModelPool:
    """Compiled models kept between the runs of one process (a sweep's trial worker), for the next run of the
    same shape: that run skips compiling, and tracing its train step and its prediction. Measured (2 CPU cores,
    AMD EPYC, a 16-32-64 z64 model, 512 images, batch 64; the session cleared before each run, as a trial worker
    does; 4 runs each after a first): building, 2 epochs and the test scores 2.00-2.14 s a run instead of
    2.35-2.66, the first epoch 0.70-0.76 s instead of 1.06-1.13.

    A run takes a kept model only where nothing it would trace differs (:func:`_pool_key`: the architecture, the
    input and output shapes, the loss, the batch size and the number of training images, the learning-rate
    schedule, the precision, whether its prediction is traced), and only where its steps are traced. Its
    variables then get the values a fresh build under the run's seed gets (a model is built for them), its
    optimizer's state is zeroed and its learning rate set: the run is the same, bit for bit, as on a fresh model
    (tested). ``mixed_float16`` runs are never pooled (their loss scale is optimizer state of its own). The pool
    also keeps the weights a fresh build gave for its last :attr:`size` shapes and seeds, with the random
    generators' state after it: a run that takes a kept model under a seed seen before (a sweep's trials share
    their seed) builds no model at all (0.05-0.07 s for a 16-32-64 z64 model) and trains the same, bit for bit.

    :func:`train` gives its model back at its end, or when its training raised (a trial stopped by its scheduler
    through a hook, a diverged run): the caller must be done with ``TrainResult.model`` before it
    trains again with the same pool (a trial worker is: its trials run one after the other)."""

    def __init__(self, size: int = POOL_SIZE, max_bytes: int = POOL_MAX_BYTES) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.taken = 0  # how many runs took a kept model
        self.dropped = 0  # how many models it let go (a process that froze its objects must unfreeze to free them)
        self.started = 0  # how many of those found the weights a build under their seed gives, and built no model
        self._kept: OrderedDict[Hashable, tuple[keras.Model, int]] = OrderedDict()
        # By (key, seed): the weights a fresh build gave, and the random generators' state it left.
        self._starts: OrderedDict[Hashable, tuple[list[np.ndarray], tuple[object, ...]]] = OrderedDict()
        self._batches: tuple[Hashable, Any] | None = None  # the last training batches made, by what made them

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def bytes(self) -> int:
        """What the kept models' variables and optimizer state hold."""
        return sum(size for _, size in self._kept.values())

    def take(self, key: Hashable) -> keras.Model | None:
        """The model kept for ``key``, now the caller's (None if there is none)."""
        model, _ = self._kept.pop(key, (None, 0))
        self.taken += model is not None
        return model

    def give(self, key: Hashable, model: keras.Model) -> None:
        """Keep ``model`` for the next run with ``key``: the least recently given are dropped past :attr:`size`
        models or :attr:`max_bytes`, and a model that alone holds more is not kept."""
        if self._kept.pop(key, None) is not None:
            self.dropped += 1
        size = state_bytes(model)
        if size > self.max_bytes:
            self.dropped += 1
            return
        self._kept[key] = (model, size)
        while len(self._kept) > self.size or self.bytes > self.max_bytes:
            self._kept.popitem(last=False)
            self.dropped += 1

    def start(self, key: Hashable, seed: int) -> tuple[list[np.ndarray], tuple[object, ...]] | None:
        """The weights a build of ``key``'s model under ``seed`` gave, and the random generators' state after it
        (:func:`cae.runtime.random_state`), as :meth:`remember_start` kept them; None if not kept."""
        found = self._starts.get((key, seed))
        if found is not None:
            self._starts.move_to_end((key, seed))
            self.started += 1
        return found

    def remember_start(self, key: Hashable, seed: int, model: keras.Model) -> None:
        """Keep the weights of ``model``, just built under ``seed``, and the generators' state now, for the next
        run of ``key`` and ``seed`` (at most :attr:`size` of them, :attr:`max_bytes` together)."""
        state = random_state()
        values = [np.array(v, copy=True) for v in model.variables]
        if state is None or sum(v.nbytes for v in values) > self.max_bytes:
            return
        self._starts[(key, seed)] = (values, state)
        while len(self._starts) > self.size or sum(sum(v.nbytes for v in values) for values, _ in
                                                   self._starts.values()) > self.max_bytes:
            self._starts.popitem(last=False)

    def batches(self, prepared: Prepared, batch_size: int, seed: int) -> Any:
        """:func:`training_batches` of ``prepared``'s train split for a run seeded with ``seed`` (just seeded): the
        dataset the last run of the same arrays (:attr:`Prepared.key`), batch size and seed made, if it was the last
        one made here. A dataset's shuffle draws the same permutations every time it is iterated (its seeds are
        fixed when it is made, from the global seed, and every epoch's iterator starts them anew: Keras's
        ``fit(x, y, shuffle=True)`` does the same), so the run gets the batches a new one gives (tested); making
        one costs 0.03-0.05 s. Kept only for arrays of a known dataset (a fingerprint) of at most
        :data:`BATCHES_MAX_BYTES` together (the dataset holds a copy of them)."""
        train = prepared.train
        key = (prepared.key, batch_size, seed) if prepared.data_fingerprint else None
        if key is not None and self._batches is not None and self._batches[0] == key:
            return self._batches[1]
        dataset = training_batches(train.x, train.y, batch_size)
        small = train.x.nbytes + train.y.nbytes <= BATCHES_MAX_BYTES
        self._batches = (key, dataset) if key is not None and small else None
        return dataset


def state_bytes(model: keras.Model) -> int:
    """The bytes of a model's variables and of its optimizer's (for a compiled one)."""
    optimizer = getattr(model, "optimizer", None)
    variables = [*model.variables, *(optimizer.variables if optimizer is not None else ())]
    return sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables)


def _pool_key(run: RunConfig, task: Task, prepared: Prepared, policy: str, steps: int) -> Hashable | None:
    """What a pooled model's traced steps depend on, for a fresh run of ``steps`` optimizer steps; None where the
    run is not pooled (trained eagerly, or in ``mixed_float16``)."""
    tc = run.train
    if steps <= EAGER_MAX_STEPS or policy == "mixed_float16":
        return None
    # A cosine decay's rate and length are constants of the traced step; a constant rate is a variable, set per run.
    schedule = (tc.lr_schedule, tc.lr, steps) if tc.lr_schedule != "constant" else (tc.lr_schedule,)
    traced_prediction = predicted_batches(prepared, tc.epochs) >= TRACE_PREDICT_MIN_BATCHES
    return (run.model, run.image_size, task.in_channels, task.out_channels, tc.loss, tc.batch_size,
            len(prepared.train.x), schedule, policy, traced_prediction)


def _reset(model: keras.Model, values: Sequence[Any], lr: float) -> None:
    """Give a pooled ``model`` the state of a fresh build: its variables' ``values`` (a fresh model's variables,
    or their values), its optimizer's initial state (no step taken, moments zero) at the learning rate ``lr``."""
    if [tuple(v.shape) for v in model.variables] != [tuple(v.shape) for v in values]:
        raise ValueError("a pooled model does not have the variables of the run that took it")
    for kept, new in zip(model.variables, values, strict=True):
        kept.assign(new)
    optimizer = model.optimizer
    for variable in optimizer.variables:
        if variable is optimizer._learning_rate:  # a variable for a constant rate (a schedule is in the key)
            variable.assign(lr)
        else:
            variable.assign(tf.zeros(variable.shape, variable.dtype))
    model.reset_metrics()


class DivergedError(CaesweepError):
    """Training produced a NaN or infinite loss."""


@dataclass(frozen=True)
class Prepared:
    """A dataset turned into one task's native arrays (built once per task, shared by all epochs)."""

    task: Task
    train: Pair
    val: Pair
    test: Pair
    val_reference: np.ndarray
    test_reference: np.ndarray
    # What determines every array above, besides the task: the dataset (its fingerprint), the denoise noise
    # and the training seed (which draws the train split's noise). Caches of per-dataset work (the trivial and
    # PCA baselines, the test-set bootstrap) are keyed on them, so a later trial finds its baselines without
    # hashing the arrays again.
    data_fingerprint: str = ""
    noise: float = 0.0
    seed: int = 0
    # The independent unit of each test image (Dataset.groups["test"]): what the test-set bootstrap resamples.
    # None: every image its own unit.
    test_groups: np.ndarray | None = None

    @property
    def key(self) -> str:
        """Identifies these arrays: equal keys, equal arrays (within one process's datasets)."""
        return f"{self.test_key}/seed={self.seed}"

    @property
    def test_key(self) -> str:
        """Identifies the test arrays and their units alone, which the training seed does not change."""
        return f"{self.data_fingerprint}/{self.task.name}/noise={self.noise!r}"


def prepare(task: Task, data: Dataset, noise: float = 0.1, seed: int = 0) -> Prepared:
    """Encode every split for ``task``.

    Denoising's noise is drawn once per split and fixed across epochs: the train split's from ``seed`` (the
    training seed), the val and test splits' from the split itself (:meth:`cae.data.Dataset.noise_seed`,
    scaled by ``noise``), so every training seed of one split is scored on the same noisy inputs and the same
    baselines.
    """
    return Prepared(
        task=task,
        train=task.make_pair(data.train, noise=noise, seed=seed),
        val=task.make_pair(data.val, noise=noise, seed=data.noise_seed("val")),
        test=task.make_pair(data.test, noise=noise, seed=data.noise_seed("test")),
        val_reference=task.reference(data.val),
        test_reference=task.reference(data.test),
        data_fingerprint=data.fingerprint,
        noise=noise,
        seed=seed,
        test_groups=data.groups["test"],
    )


@dataclass
class EpochState:
    """What an epoch hook sees: the epoch number (1-based), its record, the model and the progress."""

    epoch: int
    record: dict[str, float]
    model: keras.Model
    progress: checkpoint.Progress
    best_weights: list[np.ndarray] | None
    precision: str = precision.FLOAT32  # the Keras dtype policy the model trains in (cae.precision)
    validation_seconds: float = 0.0  # this epoch's validation pass (not in record["seconds"], the training alone)


EpochHook = Callable[[EpochState], None]


@dataclass
class TrainResult:
    """Everything one training run produced (the model itself is kept out of the serialised form)."""

    config: dict[str, Any]
    history: list[dict[str, float]]
    test: dict[str, float]
    params: int
    epochs: int
    best_epoch: int
    stopped_early: bool
    train_seconds: float
    images_per_second: float
    # The dtype policy it trained in (cae.precision.POLICIES: config["precision"] is what was asked, e.g. auto)
    # and why that one.
    precision: str = precision.FLOAT32
    precision_reason: str = ""
    model: keras.Model | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        """The flat, JSON-friendly result: config, test scores, cost (no history, no model)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("history", "test", "model", "config")}
        out.update(self.test)
        out["config"] = self.config
        out.update(at_best_epoch(self.history, self.best_epoch))
        return out

    def to_dict(self) -> dict[str, Any]:
        out = self.summary()
        out["history"] = self.history
        return out



class _EpochCallback(keras.callbacks.Callback):
    """Records the history, early-stops with resumable state, stops on divergence, calls the hooks."""

    def __init__(
        self,
        prepared: Prepared,
        monitor: str,
        patience: int | None,
        hooks: Sequence[EpochHook],
        progress: checkpoint.Progress,
        best_weights: list[np.ndarray] | None,
        policy: str = precision.FLOAT32,
    ) -> None:
        super().__init__()
        self.prepared = prepared
        self.policy = policy
        self.monitor = monitor
        self.patience = patience
        self.hooks = hooks
        self.progress = progress
        self.best_weights = best_weights
        self.stopped_early = False
        self._started = 0.0
        self._validation_seconds = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        self._check_finite("loss", logs.get("loss", math.nan), epoch)
        record = self._record(epoch, logs)
        self._check_finite("val_loss", record["val_loss"], epoch)
        p = self.progress
        p.epoch = epoch + 1
        p.history.append(record)
        value = as_loss(self.monitor, record[self.monitor])
        if value < p.best_val - MIN_DELTA:
            p.best_val, p.best_epoch, p.wait = value, p.epoch, 0
            self.best_weights = self.model.get_weights()
        else:
            p.wait += 1
            if self.patience is not None and p.wait >= self.patience:
                self.model.stop_training = True
                self.stopped_early = True
        state = EpochState(p.epoch, record, self.model, p, self.best_weights, self.policy, self._validation_seconds)
        for hook in self.hooks:
            hook(state)

    def _check_finite(self, key: str, value: float, epoch: int) -> None:
        if not math.isfinite(float(value)):
            self.model.stop_training = True
            raise DivergedError(
                f"training diverged: {key} is {value} at epoch {epoch + 1}; lower the learning rate or use batch norm"
            )

    def _record(self, epoch: int, logs: dict) -> dict[str, float]:
        trained = time.perf_counter()
        record = {"epoch": epoch + 1, "seconds": trained - self._started}
        record.update({k: float(v) for k, v in logs.items() if k != "learning_rate"})
        record.update(self._validate())
        self._validation_seconds = time.perf_counter() - trained
        return record

    def _validate(self) -> dict[str, float]:
        """One pass over the validation split: the loss and the metrics in the task's native space, and for
        colorization the metrics in RGB with the true luminance, as the test scores are (Keras's val_psnr /
        val_ssim would be those of the chroma alone). Keras's own validation pass is not used: it would predict
        the split a second time and trace a test step for every model."""
        val, task = self.prepared.val, self.prepared.task
        pred = predict(self.model, val.x)
        native = mse_np(pred, val.y)
        loss = float(np.mean(np.concatenate([
            np.asarray(self.model.loss(val.y[i : i + PREDICT_BATCH], pred[i : i + PREDICT_BATCH]))
            for i in range(0, len(pred), PREDICT_BATCH)
        ])))
        record = {"val_loss": loss, "val_mse": native, "val_native_mse": native}
        if task.kind == "colorize":
            ref = task.to_reference(val.x, pred)
            truth = self.prepared.val_reference
            record.update(val_mse=mse_np(ref, truth), val_psnr=psnr_np(ref, truth), val_ssim=ssim_np(ref, truth))
        else:
            ref = pred
            record.update(val_psnr=psnr_np(pred, val.y), val_ssim=ssim_np(pred, val.y))
        if ref.shape[-1] == 3:
            # How colourful the predictions are, measured as test_colorfulness is (RGB with the true luminance; a
            # gray task has none): an objective beside an MSE for colourisers (MSE rewards washed-out colour).
            record["val_colorfulness"] = float(colorfulness(ref).mean())
        return record


def predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Batched inference, by calling the model: eagerly, or through one traced call for a model marked by
    :func:`trace_predictions` (one trace for every batch size: unlike ``model.predict``, no trace per call site)."""
    call = _traced_call(model, x) if model in _TRACED else lambda batch: model(batch, training=False)
    return np.concatenate([np.asarray(call(x[i : i + PREDICT_BATCH])) for i in range(0, len(x), PREDICT_BATCH)])


def trace_predictions(model: keras.Model, batches: int) -> bool:
    """Mark ``model`` to predict through a traced call when it will predict at least
    :data:`TRACE_PREDICT_MIN_BATCHES` batches (see there); whether it is marked."""
    if batches >= TRACE_PREDICT_MIN_BATCHES:
        _TRACED.setdefault(model, {})
    return model in _TRACED


def _traced_call(model: keras.Model, x: np.ndarray) -> Callable[[Any], Any]:
    calls, key = _TRACED[model], (x.shape[1:], x.dtype.str)
    if key not in calls:
        ref = weakref.ref(model)  # the traced function must not keep its model alive (nor its _TRACED entry)

        def forward(batch: Any) -> Any:
            return ref()(batch, training=False)  # type: ignore[misc]

        spec = tf.TensorSpec([None, *x.shape[1:]], tf.as_dtype(x.dtype))
        calls[key] = tf.function(forward, input_signature=[spec], autograph=False)  # as Keras's own steps
    return calls[key]


def predicted_batches(prepared: Prepared, epochs: int, evaluate_test: bool = True) -> int:
    """How many batches a run of ``epochs`` epochs predicts: each epoch's validation pass, then the test split."""
    per_pass = math.ceil(len(prepared.val.x) / PREDICT_BATCH)
    return epochs * per_pass + (math.ceil(len(prepared.test.x) / PREDICT_BATCH) if evaluate_test else 0)


def compile_model(model: keras.Model, lr: float, loss: str, schedule: str = "constant", steps: int = 0) -> None:
    """Adam (:class:`cae.optimizers.FusedAdam`, see :data:`FUSED_ADAM`) at ``lr``, constant or
    (``schedule="cosine"``) decaying to 0 over ``steps`` optimizer steps (the whole training: the decay is part of
    the optimizer, so a checkpoint resumes it where it was).

    XLA follows :data:`XLA_ON_CPU` on a CPU. A model built under ``mixed_float16`` gets Keras's loss-scaling
    optimizer from ``compile`` itself (float16 gradients would underflow without it); bfloat16 needs none."""
    rate: float | keras.optimizers.schedules.LearningRateSchedule = lr
    if schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, steps))
    adam = FusedAdam if FUSED_ADAM else keras.optimizers.Adam
    model.compile(
        optimizer=adam(learning_rate=rate), loss=get_loss(loss), metrics=list(METRICS),
        jit_compile="auto" if precision.detect(tensorflow=True).gpu else XLA_ON_CPU,
    )
    # Adam's slots made now, eagerly: Keras would make them inside the first traced train step, where each variable
    # is lifted out of the graph with an initializer of its own. Measured on these 2 CPU cores (a quiet machine,
    # 11 alternating rounds): a 16-32-64 z64 model's build, compile and first epoch of 8 steps took 2.07 s instead
    # of 2.52 s (median). The trained weights and optimizer state are bit for bit the same (tests/test_training.py).
    if PREBUILD_OPTIMIZER:
        model.optimizer.build(model.trainable_variables)
    if PREBUILD_METRICS:
        # The compiled metrics' variables made now, eagerly. Without a distribution strategy Keras makes them inside
        # the first traced train step, and a tf.function that made variables in its first trace is traced again
        # (TensorFlow's rule: the variables lifted out, the step retraced without them), so every model's train step
        # was traced twice. One call on a zero image builds them; the values are reset (fit resets them anyway).
        zeros = np.zeros((1, *model.output_shape[1:]), dtype="float32")
        model.compute_metrics(None, zeros, zeros)
        model.reset_metrics()


def train(
    run: RunConfig,
    data: Dataset | Prepared,
    *,
    hooks: Sequence[EpochHook] = (),
    resume_from: str | None = None,
    evaluate_test: bool = True,
    verbose: int = 0,
    pool: ModelPool | None = None,
) -> TrainResult:
    """Train ``run`` on ``data`` and evaluate it on the test split.

    ``hooks`` are called after every epoch with an :class:`EpochState`. ``resume_from`` is a checkpoint
    folder (see :mod:`cae.checkpoint`): training continues at the next epoch with the saved weights,
    optimizer state, history and early-stopping state. ``evaluate_test=False`` leaves ``test`` empty (for
    callers that score the model themselves, e.g. in their last epoch hook). ``pool``: a fresh run takes a
    compiled model of its shape from it where one is kept, and gives its model back at the end (see
    :class:`ModelPool`).
    """
    run.validate()
    tc = run.train
    task = get_task(tc.task)
    choice = precision.resolve(tc.precision, precision.detect(tensorflow=True))
    prepared = data if isinstance(data, Prepared) else prepare(task, data, tc.noise, tc.seed)
    with precision.policy_scope(choice.policy):  # Keras's global policy, this run's only: restored after
        pool_key = None  # a resumed run's model is the checkpoint's (and is not pooled)
        steps = math.ceil(len(prepared.train.x) / tc.batch_size) * tc.epochs
        if resume_from is not None:

            def build(policy: str) -> keras.Model:  # a light checkpoint's model, as the run made it
                with precision.policy_scope(policy):
                    built = build_model(run.model, run.image_size, task.in_channels, task.out_channels)
                    compile_model(built, tc.lr, tc.loss, tc.lr_schedule, steps)
                return built

            model, progress, best = checkpoint.load(resume_from, build)
            if progress.best_epoch:
                # The kept epoch's value of *this* run's monitor: a checkpoint written before the monitor existed
                # (or with another) holds its val_loss, which must not be compared with, say, an RGB val_mse.
                best_record = at_best_epoch(progress.history, progress.best_epoch)
                progress.best_val = as_loss(tc.monitor, best_record[tc.monitor])
            if model_policy(model) != choice.policy:  # the saved layers keep the policy they were built in
                choice = precision.Choice(model_policy(model), f"resumed from a checkpoint that trained in "
                                          f"{model_policy(model)} (asked: {tc.precision}, {choice.policy})")
            set_random_seed(tc.seed + progress.epoch)  # reproducible shuffling of the remaining epochs
        else:
            set_random_seed(tc.seed)
            pool_key = None if pool is None else _pool_key(run, task, prepared, choice.policy, steps)
            kept = None if pool_key is None else pool.take(pool_key)  # type: ignore[union-attr]
            # A kept model's run builds none where a run of its shape and seed left the weights a build gives (a
            # sweep's trials share their seed): the generators are put where that build left them.
            start = None if kept is None else pool.start(pool_key, tc.seed)  # type: ignore[union-attr]
            if start is not None:
                set_random_state(start[1])
                _reset(kept, start[0], tc.lr)
                model = kept
            else:
                model = build_model(run.model, run.image_size, task.in_channels, task.out_channels)
                if pool_key is not None:
                    pool.remember_start(pool_key, tc.seed, model)  # type: ignore[union-attr]
                if kept is None:
                    compile_model(model, tc.lr, tc.loss, tc.lr_schedule, steps)
                else:
                    _reset(kept, model.variables, tc.lr)
                    model = kept
            progress, best = checkpoint.Progress(), None
        # The test split is predicted too, by the caller when it scores the model itself (evaluate_test=False).
        trace_predictions(model, predicted_batches(prepared, max(0, tc.epochs - progress.epoch)))
        callback = _EpochCallback(prepared, tc.monitor, tc.patience, hooks, progress, best, choice.policy)
        already_stopped = tc.patience is not None and progress.wait >= tc.patience
        start_epoch = progress.epoch
        started = time.perf_counter()
        if progress.epoch < tc.epochs and not already_stopped:
            steps_left = math.ceil(len(prepared.train.x) / tc.batch_size) * (tc.epochs - progress.epoch)
            model.run_eagerly = steps_left <= EAGER_MAX_STEPS  # not part of the model's saved compile config
            try:
                model.fit(
                    training_batches(prepared.train.x, prepared.train.y, tc.batch_size) if pool is None or resume_from
                    else pool.batches(prepared, tc.batch_size, tc.seed),
                    shuffle=False,  # the batches come shuffled (Keras would ignore True, with a warning)
                    epochs=tc.epochs,
                    initial_epoch=progress.epoch,
                    callbacks=[callback],
                    verbose=verbose,
                )
            except BaseException:
                # A run ended by a hook (a trial its scheduler stopped, a spent budget) or by divergence: its model
                # still serves the next run of its shape, which resets every variable it has.
                if pool_key is not None:
                    pool.give(pool_key, model)  # type: ignore[union-attr]
                raise
        seconds = time.perf_counter() - started
    if callback.best_weights is not None:
        model.set_weights(callback.best_weights)  # early stopping restores the best epoch
    trained_now = len(prepared.train.x) * (progress.epoch - start_epoch)  # images seen by this process
    result = TrainResult(
        config=run.to_flat(),
        history=progress.history,
        test=evaluate(model, prepared, run.model) if evaluate_test else {},
        params=int(model.count_params()),
        epochs=progress.epoch,
        best_epoch=progress.best_epoch,
        stopped_early=callback.stopped_early or already_stopped,
        train_seconds=sum(r["seconds"] for r in progress.history),
        images_per_second=trained_now / seconds if seconds > 0 and trained_now else 0.0,
        precision=choice.policy,
        precision_reason=choice.reason,
        model=model,
    )
    if pool_key is not None:
        pool.give(pool_key, model)  # type: ignore[union-attr]
    return result


def training_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> Any:
    """The training batches of ``fit(x, y, batch_size=batch_size, shuffle=True)``, from Keras's own pipeline for
    arrays (so the same batches in the same order for the same seed), with tf.data's autotuning set by
    :data:`DATA_AUTOTUNE`. The adapter is Keras's private module, which pyproject's bound on Keras (< 3.16) keeps as
    tested here."""
    from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

    adapter = ArrayDataAdapter(x, y, batch_size=batch_size, shuffle=True)
    # Its length said, as fit knows it for arrays: a dataset of unknown length is run until it ends, and Keras then
    # counted one optimizer step more per epoch than there were batches (measured: 14 for 2 epochs of 6 batches).
    dataset = adapter.get_tf_dataset().apply(tf.data.experimental.assert_cardinality(adapter.num_batches))
    options = tf.data.Options()
    options.autotune.enabled = DATA_AUTOTUNE
    return dataset.with_options(options)


def model_policy(model: keras.Model) -> str:
    """The dtype policy a CAE computes in: its first layer with weights' (the output layer is float32 always)."""
    return str(next(layer for layer in model.layers if layer.weights).dtype_policy.name)


def evaluate(model: keras.Model, prepared: Prepared, config: ModelConfig | None = None) -> dict[str, Any]:
    """Test scores in the reference space, the native MSE, and the baselines on the same images.

    The trivial baseline is always there; the PCA baseline (:func:`cae.baselines.pca_scores`, with
    ``config.latent_dim`` components, flagged ``pca_matched = False`` when ``config.skip``) only when the
    model's ``config`` is given, since its code size is not in the Keras model.

    ``test_mse_ci95`` is the half-width of the 95 % bootstrap interval of ``test_mse`` over the test split's
    independent units (regions of photographs for ``embedded``, images otherwise): how much the score depends
    on which images are in the test set, and nothing else (not the training seed). ``skill_ci95`` is the same
    for ``skill``, resampling the model's and the trivial baseline's errors together (paired).

    For tasks scored in RGB, ``test_colorfulness`` and ``truth_colorfulness`` are the mean Hasler-Süsstrunk
    colourfulness (:mod:`cae.colorfulness`, 0-255 scale) of the predictions and of the true images: MSE rewards
    grey-ish colourisations, this says how washed out they are.
    """
    task, test = prepared.task, prepared.test
    pred = predict(model, test.x)
    ref_pred = task.to_reference(test.x, pred)
    truth = prepared.test_reference
    errors = _per_image_mse(ref_pred, truth)  # once: test_mse and its resamples both come from them
    test_mse = float(errors.mean())  # = mse_np(ref_pred, truth): the images are all the same size
    trivial = trivial_scores(prepared)
    model_means = test_bootstrap(prepared).means(errors)
    scores: dict[str, Any] = {
        "test_mse": test_mse,
        "test_mse_ci95": half_width(model_means),
        "test_psnr": psnr_np(ref_pred, truth),
        "test_ssim": ssim_np(ref_pred, truth),
        "native_mse": mse_np(pred, test.y),
        **trivial,
        "skill": _skill(test_mse, trivial["trivial_mse"]),
        "skill_ci95": _skill_ci95(model_means, _TRIVIAL_MEANS[prepared.test_key]),
    }
    if truth.shape[-1] == 3:  # an RGB reference: how colourful the predictions are next to the truth
        scores.update(
            test_colorfulness=float(colorfulness(ref_pred).mean()),
            truth_colorfulness=truth_colorfulness(prepared),
        )
    if config is not None:
        pca = pca_scores(prepared, config.latent_dim)
        scores.update(pca, skill_pca=_skill(test_mse, pca["pca_mse"]), pca_matched=not config.skip)
    return scores


def _skill(mse: float, baseline_mse: float) -> float:
    """``1 - mse / baseline_mse``: the fraction of the baseline's error removed (NaN without a baseline)."""
    return 1.0 - mse / baseline_mse if baseline_mse > 0 else math.nan


def _per_image_mse(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The MSE of each image (float64), as :func:`cae.losses.mse_np` computes it over all of them."""
    return squared_errors(pred, truth).mean(axis=tuple(range(1, truth.ndim)))


def _skill_ci95(model_means: np.ndarray, trivial_means: np.ndarray) -> float:
    """The half-width of skill's bootstrap interval, from both errors' means in the same resamples."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return half_width(1.0 - model_means / trivial_means)


# Per process, keyed on Prepared.test_key: the trivial baseline's scores and its mean error in each bootstrap
# resample, the bootstrap of the test split and the true images' colourfulness. Every trial of a sweep shares
# them, so a worker computes them once (the bootstrap of CIFAR-10's 10,000 test images is a (1000, 10000)
# float32 array, 40 MB).
_TRUTH_COLORFULNESS: dict[str, float] = {}
_TRIVIAL_CACHE: dict[str, dict[str, float]] = {}
_TRIVIAL_MEANS: dict[str, np.ndarray] = {}
_BOOTSTRAPS: dict[str, Bootstrap] = {}
_MAX_BOOTSTRAPS = 2


def test_bootstrap(prepared: Prepared) -> Bootstrap:
    """The test split's bootstrap over its units (:func:`cae.data.bootstrap`), drawn once per process."""
    key = prepared.test_key
    if key not in _BOOTSTRAPS:
        while len(_BOOTSTRAPS) >= _MAX_BOOTSTRAPS:
            _BOOTSTRAPS.pop(next(iter(_BOOTSTRAPS)))
        groups = prepared.test_groups
        _BOOTSTRAPS[key] = bootstrap(np.arange(len(prepared.test_reference)) if groups is None else groups)
    return _BOOTSTRAPS[key]


def truth_colorfulness(prepared: Prepared) -> float:
    """The mean colourfulness of the test split's true RGB images (the reference every trial's is set against)."""
    key = prepared.test_key
    if key not in _TRUTH_COLORFULNESS:
        _TRUTH_COLORFULNESS[key] = float(colorfulness(prepared.test_reference).mean())
    return _TRUTH_COLORFULNESS[key]


def trivial_scores(prepared: Prepared) -> dict[str, float]:
    """The trivial baseline's test scores; every trial of a sweep shares them, so a worker computes them once."""
    task, test, truth = prepared.task, prepared.test, prepared.test_reference
    key = prepared.test_key
    if key not in _TRIVIAL_CACHE:
        trivial = task.trivial(test.x, test.y)
        errors = _per_image_mse(trivial, truth)
        _TRIVIAL_MEANS[key] = test_bootstrap(prepared).means(errors)
        _TRIVIAL_CACHE[key] = {
            "trivial_mse": float(errors.mean()),
            "trivial_psnr": psnr_np(trivial, truth),
            "trivial_ssim": ssim_np(trivial, truth),
            "trivial_native_mse": mse_np(task.native_trivial(test.x, test.y), test.y),
        }
    return dict(_TRIVIAL_CACHE[key])
