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
