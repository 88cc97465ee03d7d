"""Engines behind one protocol and a registry (``search.engine``): every engine name the options accept has an
engine with every method of the protocol, and an unknown one is one line; a trainable goes with the sweep."""

from __future__ import annotations

import inspect

import pytest

from benchmarks.synthetic import synthetic_trainable
from cae.errors import UsageError
from search.engine import Engine, get_engine, registered
from search.options import ENGINES
from search.sweep import Trainable
from search.trial import run_trial


def test_every_engine_the_options_accept_is_registered_with_the_whole_protocol() -> None:
    assert registered() == ENGINES
    wanted = {name for name, _ in inspect.getmembers(Engine, inspect.isfunction) if not name.startswith("_")}
    for name in ENGINES:
        engine = get_engine(name)
        assert engine.name == name and isinstance(engine.confirms, bool)
        assert wanted <= {m for m in dir(engine) if callable(getattr(engine, m))}, name
        for method in wanted:  # the same parameters as the protocol's
            assert list(inspect.signature(getattr(engine, method)).parameters) == list(
                inspect.signature(getattr(Engine, method)).parameters)[1:], (name, method)
    assert get_engine("ray").confirms and not get_engine("keras-tuner").confirms
    with pytest.raises(UsageError, match="unknown engine 'spark'; choose from ray, keras-tuner"):
        get_engine("spark")


def test_a_trainable_is_a_function_with_the_callbacks_its_trials_need_in_the_driver() -> None:
    assert Trainable().fn is run_trial and tuple(Trainable().driver_callbacks) == ()
    fn = synthetic_trainable()
    assert Trainable.of(fn) == Trainable(fn)
    given = Trainable(fn, driver_callbacks=("callback",))
    assert Trainable.of(given) is given
