"""A Ray Tune searcher over Optuna's public ask-and-tell interface, honest about pruning and failures and durable
across restarts.

Ray's own ``OptunaSearch`` tells Optuna that a trial ASHA stopped early is COMPLETE, with the loss of its last
(partial) epoch, which makes TPE believe those points are finished results. :class:`StudySearch` instead:

- reports every epoch to Optuna as an intermediate value (step = epoch), including the epoch at which the
  scheduler stopped the trial (Ray does not forward that result to searchers);
- tells a trial that ended without its own final report (i.e. one the scheduler stopped) as PRUNED; a trial
  Hyperband pauses at a rung is told nothing (it stays RUNNING in Optuna until it is resumed or stopped);
- tells a trial that diverged or raised as FAIL, with the reason as a user attribute;
- never trains a configuration twice: a proposal equal to an earlier trial (same sampled values; every search
  trial has the study's training seed) is told that trial's outcome, marked ``duplicate_of``, and another is
  drawn; when only repeats come, the space counts as exhausted and the search ends;
- tells a COMPLETE trial its validation values at the kept epoch (the weights it keeps and tests), not the
  last epoch's, as :mod:`results.reports` reads them from the trial's final report;
- keeps the Optuna study in RDB storage (SQLite by default), the study's one record: each Optuna trial holds
  its Ray trial id, so after a crash the two are reconciled: Optuna trials left RUNNING by a dead driver that
  Ray never recorded are *adopted* by the next suggestion (same parameters, same trial number), so nothing is
  lost and nothing is counted twice; and a result for a trial that is already finished in the storage is
  ignored instead of being told twice.

Its saved state (``save``/``restore``, which Ray calls with a ``searcher-state-*.pkl`` path) is plain JSON: which
Ray trial is which Optuna trial, and which were told. Nothing is unpickled on restore; a state file that is not
such JSON (damaged, or written by another program) is ignored, and the same bookkeeping is read back from the
Optuna storage. The sampler is not saved: it learns from the storage's trials, and a restored searcher gets the
fresh sampler its run was given.

What Optuna offers no public call for (a trial's storage id, re-opening a RUNNING trial by number, reading one
trial without reading the whole study) goes through :mod:`search.compat`.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search import Searcher

from results import reports
from results.reports import FailedReport, FinalReport
from search import compat
from search.storage import open_storage
from spaces import Space

logger = logging.getLogger(__name__)

RAY_TRIAL_ATTR = "ray_trial_id"
# A Ray trial its driver started after Ray last saved its state (Ray cannot continue it); its Optuna trial was
# trained again under the Ray trial now in RAY_TRIAL_ATTR.
ABANDONED_ATTR = "abandoned_ray_trial_id"
DUPLICATE_ATTR = "duplicate_of"  # a proposal equal to an earlier trial: told its outcome, never trained
INFEASIBLE_ATTR = "refused"  # a proposal over a size cap: told PRUNED before training, with the reason
IMPORTED_ATTR = "imported_from"  # a finished trial of an earlier study (warm start): never trained here
MAX_REDRAWS = 100  # proposals in a row that repeat earlier trials before the space counts as exhausted
# A finished trial's results kept as Optuna user attributes, beside its values.
SHOWN_ATTRS = ("architecture", "test_mse", "test_psnr", "test_ssim", "skill", "pca_mse", "skill_pca", "epochs",
               "best_epoch", "train_seconds", "node")
FAIL_REASON_ATTR = "fail_reason"
STATE_VERSION = 1  # of the JSON save() writes


def params_key(params: Mapping[str, Any]) -> Hashable:
    """Sampled values as a dict key: equal for exactly the same values."""
    return tuple(sorted(params.items()))


class SpaceSampler:
    """Draws a configuration of a space on an Optuna trial (define-by-run: exactly Optuna's ``suggest_*`` calls)."""

    def __init__(self, space: Space, grid: bool = False) -> None:
        self.space = space
        self.grid = grid

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        self.space.sample(trial, grid=self.grid)
        return dict(trial.params)


class StudySearch(Searcher):
    """A Ray Tune searcher over a caesweep :class:`~spaces.Space` and one Optuna study in RDB storage, with PRUNED
    and FAIL states."""

    def __init__(
        self,
        space: Space,
        *,
        objectives: Sequence[str],
        modes: Sequence[str],
        sampler: optuna.samplers.BaseSampler,
        storage_url: str,
        study_name: str,
        grid: bool = False,
        admit: Callable[[dict[str, Any]], str | None] | None = None,
        deadline: float | None = None,
    ) -> None:
        """``admit``: why a drawn configuration may not be trained (over a size cap), None when it may; such a
        configuration is told PRUNED (never trained) and another drawn. ``deadline``: the ``time.monotonic()``
        after which no new trial is proposed (the study's time budget)."""
        multi = len(objectives) > 1
        # Ray's Searcher takes lists for several objectives, though its annotations say str.
        goal: Any = (list(objectives), list(modes)) if multi else (objectives[0], modes[0])
        super().__init__(metric=goal[0], mode=goal[1])
        self._objectives = list(objectives)
        self._draw = SpaceSampler(space, grid)
        self._grid = grid
        self._size = space.size()  # the different sets of sampled values; None: a continuous axis
        self._sampler = sampler
        self._study = optuna.create_study(
            study_name=study_name, storage=open_storage(storage_url), sampler=sampler, load_if_exists=True,
            directions=["minimize" if m == "min" else "maximize" for m in modes],
        )
        with warnings.catch_warnings():  # experimental in Optuna; optuna-dashboard and the CLI show the names
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._study.set_metric_names(list(objectives))
        self._trials: dict[str, optuna.Trial] = {}  # Ray trial id -> its Optuna trial
        self._told: set[str] = set()  # Ray trials whose Optuna trial is finished
        self._reported: dict[str, set[int]] = {}  # steps told per running trial (read from the storage once)
        self._firsts: dict[Hashable, int] = {}  # sampled values -> the number of the first trial with them
        self._indexed = 0  # the study's trials (in number order) looked at so far
        self._waiting: set[int] = set()  # enqueued (WAITING) trial numbers seen, indexed once they run
        self._orphans: list[int] | None = None  # RUNNING in the storage when this searcher first proposed
        self._admit = admit
        self._deadline = deadline
        self._spent = False
        self.refused = 0  # configurations refused before training in this run (admit)

    @property
    def study(self) -> optuna.Study:
        return self._study

    @property
    def sampler(self) -> optuna.samplers.BaseSampler:
        return self._sampler

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles the searcher with the run's settings (``tuner.pkl``); caesweep never restores a searcher
        from there (a restored run gets a new one, see :mod:`search.ray_engine`), so only what describes it is
        kept: no study, no storage connection, no bookkeeping."""
        keep = ("_metric", "_mode", "_objectives", "_draw", "_grid", "_size", "_sampler", "refused")
        return {key: self.__dict__[key] for key in keep if key in self.__dict__}

    # --- saved state: plain JSON -------------------------------------------------------------------------

    def save(self, checkpoint_path: str) -> None:
        """Which Ray trial is which Optuna trial, and which were told (the rest is in the storage)."""
        state = {"version": STATE_VERSION, "study": self._study.study_name,
                 "trials": {rid: trial.number for rid, trial in self._trials.items()}, "told": sorted(self._told)}
        with open(checkpoint_path, "w") as stream:
            json.dump(state, stream)

    def restore(self, checkpoint_path: str) -> None:
        """The bookkeeping a saved state gives, checked against this searcher's storage (the study folder may have
        moved since: the storage is always this searcher's own). A state that is not the JSON :meth:`save`
        writes is ignored: the storage holds the same bookkeeping (each trial's Ray id and state)."""
        self._reset()
        numbers = self._read_state(checkpoint_path)
        frozen = {t.number: t for t in self._study.get_trials(deepcopy=False)}
        if numbers is None:
            logger.warning("the searcher state %s is not one caesweep wrote; its trials are found again in the "
                           "Optuna storage", checkpoint_path)
            numbers = {rid: t.number for t in frozen.values()
                       if isinstance(rid := t.user_attrs.get(RAY_TRIAL_ATTR), str)}
        for rid, number in numbers.items():
            if number in frozen:
                self._trials[rid] = compat.open_trial(self._study, frozen[number])
                if frozen[number].state.is_finished():
                    self._told.add(rid)

    def _read_state(self, path: str) -> dict[str, int] | None:
        try:
            with open(path, encoding="utf-8") as stream:
                state = json.load(stream)
            trials = state["trials"]
            if state.get("version") != STATE_VERSION or not isinstance(trials, dict):
                return None
            return {str(rid): int(number) for rid, number in trials.items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def _reset(self) -> None:
        self._trials, self._told, self._reported = {}, set(), {}
        self._firsts, self._indexed, self._waiting, self._orphans = {}, 0, set(), None

    # --- suggestions ---------------------------------------------------------------------------------

    def suggest(self, trial_id: str) -> dict | str | None:  # type: ignore[override]
        if trial_id in self._trials:  # asked again for the same trial (Tune does after a restore)
            return self._draw(self._trials[trial_id])
        if self._deadline is not None and time.monotonic() >= self._deadline:
            if not self._spent:
                self._spent = True
                print("note: the study's time budget is spent; no new trial is started (running ones finish)",
                      flush=True)
            return Searcher.FINISHED
        orphan = self._find_orphan()
        if orphan is not None:
            logger.info("trial %s adopts Optuna trial %d left running by a stopped driver", trial_id, orphan.number)
            for stale in [rid for rid, t in self._trials.items() if t.number == orphan.number]:
                del self._trials[stale]  # a Ray trial Ray cannot continue
            trial = compat.open_trial(self._study, orphan)
            return self._own(trial_id, trial, self._draw(trial))  # its parameters again, as they were drawn
        refused = 0
        for _ in range(MAX_REDRAWS):
            trial = self._study.ask()
            params = self._draw(trial)
            twin = self._twin(trial)  # a grid repeats a point too, once its points are spent (refused ones too)
            if twin is None:
                reason = self._admit(params) if self._admit is not None else None
                if reason is None:
                    return self._own(trial_id, trial, params)
                trial.set_user_attr(INFEASIBLE_ATTR, reason)  # never trained: told as pruned, before any epoch
                self._study.tell(trial, state=TrialState.PRUNED)
                refused += 1
                self.refused += 1
                continue
            self._tell_as_twin(trial, twin)
            if self._size is not None and len(self._firsts) >= self._size:
                print(f"note: all {self._size} configurations of the space are trained; the study stops here",
                      flush=True)
                return Searcher.FINISHED
        why = "over the size cap or already trained" if refused else "already trained"
        print(f"note: the sampler proposed only configurations {why} ({MAX_REDRAWS} draws in a row); the space "
              "looks exhausted, so the study stops here", flush=True)
        return Searcher.FINISHED

    def _own(self, trial_id: str, trial: optuna.Trial, params: dict[str, Any]) -> dict[str, Any]:
        trial.set_user_attr(RAY_TRIAL_ATTR, trial_id)
        self._trials[trial_id] = trial
        return params

    # --- no configuration trained twice ------------------------------------------------------------------

    def _twin(self, trial: optuna.Trial) -> FrozenTrial | None:
        """An earlier trial with exactly the same sampled values (the training seed is the study's for all)."""
        self._index_trials(trial.number)
        first = self._firsts.get(params_key(trial.params))
        return None if first is None else compat.trial_by_number(self._study, first)

    def _index_trials(self, proposed: int) -> None:
        """Index the study's trials not indexed yet, up to the one being proposed (its fate is not decided):
        each new trial is looked at once, whatever the study's size. A proposal told as a repeat is no twin."""
        trials = self._study.get_trials(deepcopy=False)
        waiting = [compat.trial_by_number(self._study, number) for number in self._waiting]
        self._waiting.clear()
        for frozen in [*waiting, *trials[self._indexed:]]:
            if frozen.number == proposed:
                break
            if frozen.number >= self._indexed:
                self._indexed = frozen.number + 1
            if frozen.state == TrialState.WAITING:
                self._waiting.add(frozen.number)
            elif DUPLICATE_ATTR not in frozen.user_attrs:
                self._firsts.setdefault(params_key(frozen.params), frozen.number)

    def _tell_as_twin(self, trial: optuna.Trial, twin: FrozenTrial) -> None:
        """Tell the sampler what a repeated proposal would give: the earlier trial's recorded outcome."""
        trial.set_user_attr(DUPLICATE_ATTR, twin.number)
        if twin.state == TrialState.COMPLETE and twin.values is not None:
            self._study.tell(trial, twin.values if len(twin.values) > 1 else twin.values[0])
        elif twin.state == TrialState.PRUNED:
            self._study.tell(trial, state=TrialState.PRUNED)
        else:  # failed, or still running: nothing to learn yet
            self._study.tell(trial, state=TrialState.FAIL)

    def _find_orphan(self) -> FrozenTrial | None:
        """An Optuna trial RUNNING in the storage that no live Ray trial owns (its driver died), or that was
        freed from a Ray trial Ray cannot continue.

        Only a dead driver leaves such trials, so the storage is searched once, at this searcher's first
        proposal (after a restore: its first one then); every later trial is this searcher's own.
        """
        if self._orphans is None:
            self._orphans = [t.number for t in self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
        while self._orphans:
            owned = {t.number for t in self._trials.values()}
            frozen = compat.trial_by_number(self._study, self._orphans.pop(0))
            if frozen.state != TrialState.RUNNING:
                continue
            # Not held by a Ray trial of this run; or held in a saved state newer than the run's trial list,
            # by a Ray trial that Ray cannot continue (reconcile.release_unrecorded freed it).
            if frozen.number not in owned or frozen.user_attrs.get(RAY_TRIAL_ATTR) is None:
                return frozen
        return None

    # --- results ---------------------------------------------------------------------------------------

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._report(trial_id, result)

    def on_pause(self, trial_id: str) -> None:
        """Hyperband paused the trial at its rung (search.schedulers.LiveHyperBand): it is not finished, so Optuna is
        told nothing; its trial stays RUNNING with the epochs it reported, until it is resumed or stopped."""

    def on_unpause(self, trial_id: str) -> None:
        """Hyperband's rung promoted the trial: it resumes from its checkpoint and goes on reporting its epochs."""

    def _report(self, trial_id: str, result: dict | None) -> None:
        epoch = reports.epoch_of(reports.read(result))
        if isinstance(self.metric, list) or trial_id in self._told or epoch is None:
            return  # Optuna has no intermediate values for multi-objective studies
        trial = self._trial_for(trial_id)
        value = epoch.record.get(self.metric, epoch.costs.get(self.metric))  # the epoch's own value, as ASHA sees
        if trial is None or value is None or not math.isfinite(value):
            return
        done = self._reported.get(trial_id)
        if done is None:  # first seen by this driver: what a driver before it reported is in the storage
            done = self._reported[trial_id] = set(compat.trial_by_number(self._study, trial.number).intermediate_values)
        if epoch.epoch not in done:
            trial.report(float(value), epoch.epoch)
            done.add(epoch.epoch)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._told:
            return
        trial = self._trial_for(trial_id)
        if trial is None:
            logger.warning("no Optuna trial is recorded for Ray trial %s; nothing to tell", trial_id)
            return
        if compat.trial_by_number(self._study, trial.number).state.is_finished():
            self._told.add(trial_id)
            return  # told before a restart: telling twice would duplicate it
        result = result or {}
        self._report(trial_id, result)  # the result that made the scheduler stop it never reached us
        self._told.add(trial_id)
        self._reported.pop(trial_id, None)
        for key in SHOWN_ATTRS:  # what a person reads in optuna-dashboard or `optuna trials`
            value = result.get(key)
            if isinstance(value, (str, int, float)) and not (isinstance(value, float) and not math.isfinite(value)):
                trial.set_user_attr(key, value)
        report = reports.read(result)
        if error or isinstance(report, FailedReport):
            reason = report.error if isinstance(report, FailedReport) else None
            trial.set_user_attr(FAIL_REASON_ATTR,
                                (reason or "the trial raised an exception (see its error.txt under ray/)")[:500])
            self._study.tell(trial, state=TrialState.FAIL)
            return
        if not isinstance(report, FinalReport):
            # Ended without the trial's own final report: the scheduler stopped it early.
            self._study.tell(trial, state=TrialState.PRUNED)
            return
        values = [report.objective(metric) for metric in self._objectives]  # val metrics at the kept epoch
        told = [float(v) for v in values if v is not None]
        if len(told) < len(values):
            trial.set_user_attr(FAIL_REASON_ATTR, "objective missing or not finite in the final result")
            self._study.tell(trial, state=TrialState.FAIL)
        else:
            self._study.tell(trial, told if len(told) > 1 else told[0])

    def _trial_for(self, trial_id: str) -> optuna.Trial | None:
        """The Optuna trial of a Ray trial, found again through the storage after a restart."""
        if trial_id in self._trials:
            return self._trials[trial_id]
        for frozen in self._study.get_trials(deepcopy=False):
            if frozen.user_attrs.get(RAY_TRIAL_ATTR) == trial_id:
                self._trials[trial_id] = compat.open_trial(self._study, frozen)
                return self._trials[trial_id]
        return None
