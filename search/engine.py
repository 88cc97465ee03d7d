"""The engines a study runs on, behind one protocol, by name: ``ray`` (Ray Tune + Optuna, :mod:`search.ray_engine`)
and ``keras-tuner`` (:mod:`search.kt.engine`).

Everything that differs between engines goes through :class:`Engine`; the commands (:mod:`search.commands`)
and the planner (:mod:`search.plan`) never ask which engine a study uses. An engine's module is imported when
the engine is first asked for, so a Ray study's driver never imports keras-tuner (nor TensorFlow) and a
keras-tuner study never starts Ray.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from cae.errors import UsageError
from search.options import ENGINES

if TYPE_CHECKING:
    from search.interrupt import Interruption
    from search.sweep import Sweep


class Engine(Protocol):
    """What a study needs of an engine. ``meta`` is the study's ``study.json`` as a dict; the engine records in it
    what it needs to continue (e.g. its run names) through :func:`search.metadata.update_meta`."""

    name: str
    confirms: bool  # whether ``confirm`` can re-train a study's best configurations with new seeds on it

    def check_options(self, sweep: Sweep) -> Sweep:
        """Refuse what the engine cannot honour (a :class:`UsageError`, nothing written); the sweep it runs."""
        ...

    def prepare(self, sweep: Sweep) -> None:
        """Get ready to run in this process: join or start a Ray cluster, or set up TensorFlow's devices."""
        ...

    def run(self, sweep: Sweep, meta: dict[str, Any], stop: Interruption, resume: bool) -> pd.DataFrame:
        """Run the study (``resume``: continue it) until it has ``sweep.samples`` trials or ``stop`` is
        requested; the study's trial table."""
        ...

    def trial_count(self, sweep: Sweep) -> int:
        """The trials the search has made so far (a confirm run's repeats are not among them)."""
        ...

    def started(self, sweep: Sweep) -> bool:
        """Whether any trial of the study ever started (a study with none can be removed after a failure)."""
        ...

    def confirm(
        self, sweep: Sweep, meta: dict[str, Any], stop: Interruption, configs: Sequence[dict[str, Any]],
        target: int, unfinished: bool,
    ) -> pd.DataFrame:
        """Train each of ``configs`` once (a confirm run: told to no sampler), continuing an unfinished one first;
        the study's trial table. Only where ``confirms`` is true."""
        ...


# Engine name -> "module:class", imported on first use.
_REGISTRY = {
    "ray": "search.ray_engine:RayEngine",
    "keras-tuner": "search.kt.engine:KerasTunerEngine",
}


def get_engine(name: str) -> Engine:
    """The engine called ``name`` (one of :data:`search.options.ENGINES`)."""
    if name not in _REGISTRY:
        raise UsageError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")
    module, _, attribute = _REGISTRY[name].partition(":")
    engine: Engine = getattr(importlib.import_module(module), attribute)()
    return engine


def registered() -> tuple[str, ...]:
    return tuple(_REGISTRY)
