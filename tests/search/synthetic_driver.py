"""``python -m search`` with the synthetic trainable: a real driver process (its own private Ray, signals, exit
codes), whose trials report a known loss, checkpoint each epoch and take ``SYNTHETIC_EPOCH_S`` seconds an epoch
instead of training. For tests whose guarantee is about processes and signals, not about training.

    python -m tests.search.synthetic_driver run --space ... (the same arguments as python -m search)
"""

from __future__ import annotations

import os
import sys

from benchmarks.synthetic import synthetic_trainable
from cae.cli import run
from search.cli import prepare

if __name__ == "__main__":
    trainable = synthetic_trainable(float(os.environ.get("SYNTHETIC_EPOCH_S", "0.5")), checkpoints=True)
    raise SystemExit(run(lambda argv: prepare(argv, trainable)(), sys.argv[1:]))
