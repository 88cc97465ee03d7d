"""Ray Tune's FIFO and ASHA schedulers, choosing the next trial among the trials that can still run.

Ray's ``FIFOScheduler.choose_trial_to_run`` (which ASHA inherits) scans every trial of the run for a PENDING
one, then for a PAUSED one, at each step of Tune's event loop. With thousands of finished trials that scan
became the largest driver cost that grows with the study (py-spy on the scale benchmark: 1 % of the driver's
time in the first decile of 2,000 trials, 6 % in the last). These subclasses make the same choice (the first
PENDING trial in the order trials were added, else the first PAUSED one) from their own ordered list of the
trials that have not ended; a trial leaves that list the first time it is seen TERMINATED or ERROR. Ray adds
every trial through ``on_trial_add``, restored ones included, so the list is complete after a resume too.
"""

from __future__ import annotations

from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

_ENDED = (Trial.TERMINATED, Trial.ERROR)


class _LiveTrials:
    """``choose_trial_to_run`` over the trials not yet ended, in the order they were added."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._live: dict[Any, None] = {}  # an ordered set

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)  # type: ignore[misc]
        self._live[trial] = None

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        paused = None
        for trial in list(self._live):
            status = trial.status
            if status == Trial.PENDING:
                return trial
            if status in _ENDED:
                del self._live[trial]
            elif status == Trial.PAUSED and paused is None:
                paused = trial
        return paused

    def __getstate__(self) -> dict[str, Any]:  # pickled with the run's settings: trials are Ray's state, not ours
        state = dict(self.__dict__)
        state["_live"] = {}
        return state


class LiveFIFOScheduler(_LiveTrials, FIFOScheduler):
    """``FIFOScheduler`` whose choice costs the number of live trials, not of all trials."""


class LiveASHAScheduler(_LiveTrials, AsyncHyperBandScheduler):
    """``ASHAScheduler`` whose choice costs the number of live trials, not of all trials."""
