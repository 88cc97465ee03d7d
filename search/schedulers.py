"""Ray Tune's FIFO, ASHA and Hyperband schedulers as caesweep runs them.

**FIFO and ASHA: choosing the next trial among the trials that can still run.**

Ray's ``FIFOScheduler.choose_trial_to_run`` (which ASHA inherits) scans every trial of the run for a PENDING
one, then for a PAUSED one, at each step of Tune's event loop. With thousands of finished trials that scan
became the largest driver cost that grows with the study (py-spy on the scale benchmark: 1 % of the driver's
time in the first decile of 2,000 trials, 6 % in the last). These subclasses make the same choice (the first
PENDING trial in the order trials were added, else the first PAUSED one) from their own ordered list of the
trials that have not ended; a trial leaves that list the first time it is seen TERMINATED or ERROR. Ray adds
every trial through ``on_trial_add``, restored ones included, so the list is complete after a resume too.

**Hyperband: each rung judges a whole bracket.** Hyperband is synchronous: a bracket of ``n`` trials trains each
to its rung (``max_epochs / 3**k`` epochs), pauses it there, and when all ``n`` are at the rung keeps the best
third, resumed from their checkpoints, and stops the rest. Ray's ``HyperBandScheduler`` judges a bracket as
soon as every trial *in it so far* is at the rung, but Tune adds trials one at a time as the searcher proposes
them (one pending trial at a time for a searcher such as caesweep's), so with a few workers the first trials
reach the rung alone, the halving keeps them all, and the bracket's size shrinks with it; and it fills its
bracket without any rung first. An earlier attempt with it never stopped a trial. :class:`LiveHyperBand` is
Ray's ``HyperBandForBOHB`` (the same brackets and halving, with an Optuna sampler here, not ``TuneBOHB``): it
fills the largest bracket first and holds a trial at its rung until the bracket is full and all its other trials
are paused, so each rung judges ``n`` trials whatever the timing; a bracket that will not fill (the study's last
trials) is judged with what it has once no trial runs. Two things Ray's own classes do not do for a sweep are
added: ``--concurrency`` (:class:`HyperBandLimiter`: Ray's ``ConcurrencyLimiter`` counts a paused trial as
running, so with fewer workers than a bracket's trials the bracket never filled), and a restored run (Ray adds
the run's ended trials to the scheduler again; a bracket would wait for them forever). And a bracket counts as
full once it was given all its trials (Ray counts the live ones: with trials proposed one by one, a bracket whose
trials end without a rung took trial after trial as each ended, and the next brackets were never started).
"""

from __future__ import annotations

from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, HyperBandForBOHB
from ray.tune.schedulers.hyperband import _Bracket
from ray.tune.search import ConcurrencyLimiter, Searcher

from search import compat

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


class _AddedBracket(_Bracket):
    """A Hyperband bracket that is full once it was given all its trials, ended ones included."""

    def filled(self) -> bool:
        return len(self._all_trials) >= self._n0


class LiveHyperBand(HyperBandForBOHB):
    """Ray's ``HyperBandForBOHB`` for a sweep: ended trials of a restored run take no place in a bracket, at most
    ``max_running`` trials train at once (``--concurrency``; None: as many as the cluster's resources allow), and
    a restored run starts with fresh brackets (Ray adds its unfinished trials again, each from its checkpoint)."""

    def __init__(self, *args: Any, max_running: int | None = None, **kwargs: Any) -> None:
        compat.require("ray", "Hyperband's brackets (HyperBandScheduler._create_bracket, _Bracket)")
        super().__init__(*args, **kwargs)
        self.max_running = max_running

    def _create_bracket(self, s: int) -> _AddedBracket:
        return _AddedBracket(time_attr=self._time_attr, max_trials=self._get_n0(s), init_t_attr=self._get_r0(s),
                             max_t_attr=self._max_t_attr, eta=self._eta, s=s, stop_last_trials=self._stop_last_trials)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        if trial.status not in _ENDED:  # a restored run's finished trials: nothing left to judge
            super().on_trial_add(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        if trial in self._trial_info:
            super().on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any, allow_recurse: bool = True) -> Any:
        """Ray's choice (a paused trial its rung promoted, else a pending one), none while ``max_running`` train:
        the trials a rung promotes resume one by one as the others leave."""
        if self.max_running is not None:
            running = sum(1 for trial in tune_controller.get_trials() if trial.status == Trial.RUNNING)
            if running >= self.max_running:
                return None
        return super().choose_trial_to_run(tune_controller, allow_recurse=allow_recurse)

    def __getstate__(self) -> dict[str, Any]:  # pickled with the run's settings: brackets hold Ray's trials
        state = dict(self.__dict__)
        state.update(_hyperbands=[[]], _trial_info={}, _state={"bracket": None, "band_idx": 0})
        return state


class HyperBandLimiter(ConcurrencyLimiter):
    """``--concurrency K`` under Hyperband: at most K trials proposed and not paused at a rung. A trial paused at
    its rung gives its place to the next proposal (Ray's ``ConcurrencyLimiter`` keeps it, so a bracket larger
    than K never filled); a trial its rung promotes takes it back; one stopped while paused is still told to the
    searcher (Ray's would drop it, as it drops any trial it no longer counts)."""

    def __init__(self, searcher: Searcher, max_concurrent: int) -> None:
        super().__init__(searcher, max_concurrent=max_concurrent)
        self.paused: set[str] = set()

    def on_pause(self, trial_id: str) -> None:
        if trial_id in self.live_trials:
            self.live_trials.remove(trial_id)
            self.num_unfinished_live_trials -= 1
            self.paused.add(trial_id)
        super().on_pause(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        if trial_id in self.paused:
            self.paused.remove(trial_id)
            self.live_trials.add(trial_id)
            self.num_unfinished_live_trials += 1
        super().on_unpause(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self.paused:  # stopped at its rung while paused
            self.paused.remove(trial_id)
            self.searcher.on_trial_complete(trial_id, result=result, error=error)
        else:
            super().on_trial_complete(trial_id, result=result, error=error)
