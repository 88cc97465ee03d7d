"""cae.runtime: TensorFlow and Keras imported without scikit-learn, which stays importable afterwards."""

from __future__ import annotations

import subprocess
import sys

from tests.fresh_process import REPO

AFTER = """
import sys
import cae.runtime
assert "sklearn" not in sys.modules, "TensorFlow's import loaded scikit-learn"
from cae.runtime import keras
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
assert model(keras.ops.ones((1, 2))).shape == (1, 1)
from sklearn.decomposition import PCA  # still importable
assert PCA(n_components=1).fit([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]).n_components_ == 1
print("ok")
"""

BEFORE = """
import sklearn
import cae.runtime
from keras.src.wrappers import fixes
assert fixes.sklearn is sklearn  # loaded before: Keras sees it as usual
print("ok")
"""


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_tensorflow_is_imported_without_scikit_learn_which_stays_importable() -> None:
    done = run(AFTER)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_process_that_loaded_scikit_learn_first_keeps_it_for_keras() -> None:
    done = run(BEFORE)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def draws() -> list[object]:
    """What a run draws from every generator it uses after seeding: Python's, NumPy's, Keras's stateless ops (the
    initializers), a traced TensorFlow op seeded by the global seed, a tf.data shuffle made eagerly (its seeds drawn
    from TensorFlow's eager generator), and the shuffled training batches."""
    import random

    import numpy as np

    from cae.runtime import keras, tf
    from cae.training import training_batches

    x = np.arange(40, dtype="float32").reshape(20, 2)
    uniform = tf.function(lambda: tf.random.uniform((3,)))
    return [random.random(), np.random.rand(3).tolist(), keras.random.normal((3,)).numpy().tolist(),
            keras.initializers.GlorotUniform()((3, 3)).numpy().tolist(), uniform().numpy().tolist(),
            list(tf.data.Dataset.range(8).shuffle(8).as_numpy_iterator()),
            [batch[0].numpy().tolist() for batch in training_batches(x, x, 4)]]


def test_seeding_without_clearing_caches_draws_what_keras_seeding_draws() -> None:
    from cae.runtime import keras, set_random_seed

    for seed in (0, 3):
        keras.utils.set_random_seed(seed)
        theirs = draws()
        draws()  # the generators moved on: the next seeding must set every one back
        set_random_seed(seed)
        assert draws() == theirs
    set_random_seed(0)
    zero = draws()
    set_random_seed(3)
    assert all(a != b for a, b in zip(zero, draws(), strict=True))  # every draw depends on the seed


def test_clearing_the_session_makes_keras_state_anew() -> None:
    from cae.runtime import clear_session, keras

    keras.backend.clear_session()
    first = keras.layers.Dense(1).name
    keras.layers.Dense(1)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        clear_session()
        assert keras.layers.Dense(1).name == first  # names count from zero again
        assert keras.config.dtype_policy().name == "float32"  # the settings are the defaults
    finally:
        keras.config.set_dtype_policy("float32")
