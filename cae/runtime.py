"""Import TensorFlow and Keras once, quietly, with the CPU/GPU decision made before TensorFlow starts.

TensorFlow's C++ start-up prints CUDA-driver notices (and, without a GPU, a ``cuInit`` error) straight to
file descriptor 2, before any Python logging is configured. On a machine without an NVIDIA device those lines
are noise, so this module silences descriptor 2 for the duration of the import only; Python exceptions
raised by the import still reach the user.

TensorFlow's import loads Keras, and Keras imports scikit-learn (when installed) for its scikit-learn wrappers,
which caesweep does not use: 1.3 of the 8 CPU-seconds of the import (measured), paid by every trial worker
process. The import is made with scikit-learn hidden, unless it is already loaded; it stays importable after
(``keras.wrappers.SKLearn*`` then say scikit-learn is missing in that process). Every module that needs
TensorFlow imports it from here::

    from cae.runtime import keras, tf
"""

from __future__ import annotations

import gc
import os
import random
import sys
import threading
from pathlib import Path


def has_nvidia_device() -> bool:
    """True when this machine exposes an NVIDIA GPU to processes (the driver's control node exists)."""
    return Path("/dev/nvidiactl").exists()


def _quiet_import() -> None:
    if "tensorflow" in sys.modules:
        return
    # 2 hides INFO/WARNING; without a GPU also hide the cuInit ERROR that only says "no GPU here".
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if has_nvidia_device() else "3")
    hide_sklearn = "sklearn" not in sys.modules
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        if hide_sklearn:
            sys.modules["sklearn"] = None  # type: ignore[assignment]  # `import sklearn` raises ImportError
        import tensorflow  # noqa: F401
    finally:
        if hide_sklearn and sys.modules.get("sklearn", 0) is None:
            del sys.modules["sklearn"]
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_quiet_import()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras.src.backend.common import global_state  # noqa: E402
from keras.src.random import seed_generator  # noqa: E402
from keras.src.utils import rng_utils  # noqa: E402
from tensorflow.python.eager import context  # noqa: E402

# Keras's set_random_seed and clear_session both clear TensorFlow's eager caches (tf.random.set_seed does, "to reset
# any existing seeds" of stateful random kernels): every traced function is then instantiated again at its next
# call, Grappler's graph optimisation included. A trial worker reseeds and clears for every trial, so a kept model
# (cae.training.ModelPool) paid for its train step, its prediction and the SSIM's instantiation again: its first
# training step took 0.27-0.40 s instead of 0.07-0.09. Measured in one process (2 CPU cores, AMD EPYC, a 16-32-64 z64
# model, 512 images, 2 epochs, pooled, 6 runs after a first, two alternating rounds): building, training and test
# scores 1.50-1.72 s a run instead of 1.86-1.91 (the first epoch 0.44-0.50 s instead of 0.62-0.66), the same results
# bit for bit. The two functions below do what Keras's do, less that clearing. caesweep draws its randomness from
# stateless ops (Keras's initializers and keras.random), NumPy and tf.data's shuffle, which a cached kernel does not
# hold (tested: the same draws as Keras's seeding, and runs train the same whatever ran before them); an eager
# *stateful* random op (tf.random.uniform outside a tf.function) would continue its stream after a reseed instead.
# The kept caches cost no memory that clearing saved: a process training 24 runs of 12 shapes in turn (the pool
# letting models go) grew by 56 MB over the last 12 runs when it cleared them, by 61 MB when it kept them.
# The Keras modules are private ones, which pyproject's bound on Keras (< 3.16) keeps as tested here.


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras as ``keras.utils.set_random_seed(seed)`` does, without clearing
    TensorFlow's eager caches (see above); outside eager execution it is Keras's own."""
    ctx = context.context()
    if not (tf.executing_eagerly() and hasattr(ctx, "_seed") and hasattr(ctx, "_rng")):
        keras.utils.set_random_seed(seed)
        return
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    # tf.random.set_seed(seed), eagerly: context._set_global_seed, less its TFE_ContextClearCaches.
    ctx._seed = seed
    ctx._rng = random.Random(seed)


def random_state() -> tuple[object, ...] | None:
    """The state of every generator :func:`set_random_seed` seeds, for :func:`set_random_state` to put back; None
    once Keras's global SeedGenerator is made (its state is a variable, not copied here)."""
    if global_state.get_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR) is not None:
        return None
    rng = getattr(context.context(), "_rng", None)
    return (random.getstate(), np.random.get_state(), None if rng is None else rng.getstate(),
            global_state.get_global_attribute(rng_utils.GLOBAL_RANDOM_SEED), context.context()._seed)


def set_random_state(state: tuple[object, ...]) -> None:
    """Put back the generators' state :func:`random_state` returned."""
    python, numpy, tensorflow, seed, tf_seed = state
    random.setstate(python)  # type: ignore[arg-type]
    np.random.set_state(numpy)  # type: ignore[arg-type]
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    ctx = context.context()
    ctx._seed = tf_seed
    ctx._rng = None if tensorflow is None else random.Random()
    if tensorflow is not None:
        ctx._rng.setstate(tensorflow)


def clear_session() -> None:
    """``keras.backend.clear_session()`` without clearing TensorFlow's eager caches (see above): Keras's global
    state made anew (layer names count from zero again, the settings are the defaults), TensorFlow's default graph
    reset, and Python's garbage collected."""
    global_state.GLOBAL_STATE_TRACKER = threading.local()
    global_state.GLOBAL_SETTINGS_TRACKER = threading.local()
    tf.compat.v1.reset_default_graph()
    gc.collect()


__all__ = ["clear_session", "has_nvidia_device", "keras", "random_state", "set_random_seed", "set_random_state", "tf"]
