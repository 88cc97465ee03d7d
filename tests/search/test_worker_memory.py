"""A reused trial worker's memory: what the model pool lets go is freed, although the worker freezes its objects."""

from __future__ import annotations

import gc
import weakref

from cae.runtime import keras
from cae.training import ModelPool
from search import trial


def model() -> keras.Model:
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])


def test_a_model_the_pool_lets_go_is_freed_although_the_worker_froze_it() -> None:
    # Each trial starts by collecting and then freezing what is left (search.trial._clear_session): a model the
    # pool kept is frozen with it. Let go later, it is a frozen cycle, which no collection frees unless the
    # objects are unfrozen first.
    pool = ModelPool(size=1)
    try:
        kept = model()
        ref = weakref.ref(kept)
        pool.give("first", kept)
        del kept
        trial._clear_session(pool)  # a trial starts: the kept model is frozen
        pool.give("second", model())  # the next trial's model: the first is let go
        gc.collect()
        assert ref() is not None  # a frozen cycle: collections do not see it
        trial._clear_session(pool)  # the next trial starts
        assert ref() is None
        assert len(pool) == 1 and pool.dropped == 1
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual
