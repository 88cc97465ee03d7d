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

import os
import sys
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
import tensorflow as tf  # noqa: E402

__all__ = ["has_nvidia_device", "keras", "tf"]
