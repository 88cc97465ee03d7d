"""The search space through keras-tuner's ``HyperParameters`` (define-by-run, conditional per-level filters)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from spaces import Space

HYPERBAND_FACTOR = 3  # keep the best third at each rung (the same reduction as the Ray engine's ASHA)


class KerasTunerTrial:
    """Optuna's three ``suggest_*`` calls (what :meth:`Space.sample` makes) on a keras-tuner ``HyperParameters``.

    ``conditions`` maps a parameter name to ``(parent, values)``: that parameter is created inside
    ``hp.conditional_scope(parent, values)`` so that keras-tuner samples it only when it is used.
    """

    def __init__(self, hp: Any, conditions: Mapping[str, tuple[str, list[Any]]] | None = None) -> None:
        self.hp = hp
        self.conditions = dict(conditions or {})

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        # A log range has no additive step in keras-tuner (its step would be a factor): any integer in range.
        with self._scope(name):
            return self.hp.Int(name, low, high, step=None if log else step, sampling="log" if log else "linear")

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        with self._scope(name):
            return self.hp.Float(name, low, high, step=step, sampling="log" if log else "linear")

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        with self._scope(name):
            value = self.hp.Choice(name, list(choices))
        # hp.Choice stores booleans as 0/1: hand back the space's own choice.
        return next((c for c in choices if c == value), value)

    def _scope(self, name: str) -> contextlib.AbstractContextManager[Any]:
        if name not in self.conditions:
            return contextlib.nullcontext()
        parent, values = self.conditions[name]
        return self.hp.conditional_scope(parent, values)


def _depths(space: Space) -> list[int]:
    depth = next((p for p in space.params if p.name == "depth"), None)
    return [] if depth is None else [int(d) for d in depth.grid_values()]


def space_conditions(space: Space) -> dict[str, tuple[str, list[int]]]:
    """Parameters the space samples only for some depths -> ("depth", those depths).

    Found by sampling once per depth and comparing the names, so nothing here knows how a space names them.
    """
    import keras_tuner

    depths = _depths(space)
    used: dict[int, set[str]] = {}
    for depth in depths:
        hp = keras_tuner.HyperParameters()
        hp.values["depth"] = depth  # registered with this value instead of its default
        used[depth] = set(space.sample(KerasTunerTrial(hp)))
    names = sorted(set().union(*used.values())) if used else []
    return {
        name: ("depth", [d for d in depths if name in used[d]])
        for name in names
        if not all(name in used[d] for d in depths)
    }


def declare_space(space: Space, conditions: Mapping[str, tuple[str, list[int]]]) -> Any:
    """The space as a keras-tuner ``HyperParameters``, every (conditional) parameter declared."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    trial = KerasTunerTrial(hp, conditions)
    depths: list[int | None] = [*_depths(space)] or [None]
    for depth in depths:
        if depth is not None:
            hp.values["depth"] = depth  # activate the parameters of this depth so they get declared
        space.sample(trial)
    return hp


def sample_params(space: Space, hp: Any, conditions: Mapping[str, tuple[str, list[int]]]) -> dict[str, Any]:
    """The raw values of one trial (feed them to :meth:`Space.resolve`), read from its ``HyperParameters``."""
    return space.sample(KerasTunerTrial(hp, conditions))


def hyperband_trials(max_epochs: int, factor: int = HYPERBAND_FACTOR) -> int:
    """Trials in one Hyperband iteration: keras-tuner's bracket sizes (``HyperbandOracle``), summed."""
    brackets, epochs = 0, float(max_epochs)
    while epochs >= 1:
        epochs /= factor
        brackets += 1
    last_round_size = math.ceil(1 + math.log(max_epochs, factor))
    return sum(
        math.ceil(last_round_size / (bracket + 1) * factor ** (bracket - rnd))
        for bracket in range(brackets)
        for rnd in range(bracket + 1)
    )


