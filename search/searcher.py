"""Ray Tune's ``OptunaSearch``, made honest about pruning and failures and durable across restarts.

Plain ``OptunaSearch`` tells Optuna that a trial ASHA stopped early is COMPLETE, with the loss of its last
(partial) epoch, which makes TPE believe those points are finished results. :class:`StudySearch` instead:

- reports every epoch to Optuna as an intermediate value (step = epoch), including the epoch at which the
  scheduler stopped the trial (Ray does not forward that result to searchers);
- tells a trial that ended without its own final report (i.e. one the scheduler stopped) as PRUNED;
- tells a trial that diverged or raised as FAIL, with the reason as a user attribute;
- never trains a configuration twice: a proposal equal to an earlier trial (same sampled values; every search
  trial has the study's training seed) is told that trial's outcome, marked ``duplicate_of``, and another is
  drawn; when only repeats come, the space counts as exhausted and the search ends;
- tells a COMPLETE trial its validation values at the kept epoch (the weights it keeps and tests), not the
  last epoch's, as :mod:`results.reports` reads them from the trial's final report;
- keeps the Optuna study in RDB storage (SQLite by default) and records each Optuna trial's Ray trial id,
  so after a crash the two are reconciled: Optuna trials left RUNNING by a dead driver that Ray never
  recorded are *adopted* by the next suggestion (same parameters, same trial number), so nothing is lost
  and nothing is counted twice; and a result for a trial that is already finished in the storage is
  ignored instead of being told twice.
"""

from __future__ import annotations

import logging
import math
import pickle
import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from results import reports
from results.reports import FailedReport, FinalReport
from search.storage import open_storage
from spaces import Space

logger = logging.getLogger(__name__)

RAY_TRIAL_ATTR = "ray_trial_id"
# A Ray trial its driver started after Ray last saved its state (Ray cannot continue it); its Optuna trial was
# trained again under the Ray trial now in RAY_TRIAL_ATTR.
ABANDONED_ATTR = "abandoned_ray_trial_id"
DUPLICATE_ATTR = "duplicate_of"  # a proposal equal to an earlier trial: told its outcome, never trained
MAX_REDRAWS = 100  # proposals in a row that repeat earlier trials before the space counts as exhausted
# A finished trial's results kept as Optuna user attributes, beside its values.
SHOWN_ATTRS = ("architecture", "test_mse", "test_psnr", "test_ssim", "skill", "pca_mse", "skill_pca", "epochs",
               "best_epoch", "train_seconds", "node")
FAIL_REASON_ATTR = "fail_reason"
# Bound to this searcher's storage, never saved with Ray's experiment state: pickling the Optuna study (and every
# optuna.Trial, which holds it) would copy every trial of the study at each save, once a second.
# The steps each trial reported are read from the storage when a driver first sees a trial (a saved copy could be
# older than the storage), then kept here until the trial ends.
_NOT_SAVED = ("_storage", "_ot_study", "_firsts", "_indexed", "_waiting", "_orphans", "_reported")


def params_key(params: Mapping[str, Any]) -> Hashable:
    """Sampled values as a dict key: equal for exactly the same values."""
    return tuple(sorted(params.items()))


class SpaceSampler:
    """The define-by-run function handed to OptunaSearch (a picklable object, not a bound method)."""

    def __init__(self, space: Space, grid: bool = False) -> None:
        self.space = space
        self.grid = grid

    def __call__(self, trial: optuna.Trial) -> None:
        self.space.sample(trial, grid=self.grid)


class StudySearch(OptunaSearch):
    """OptunaSearch over a caesweep :class:`~spaces.Space`, with RDB storage, PRUNED and FAIL states."""

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
    ) -> None:
        self._storage_url = storage_url
        self._grid = grid
        self._size = space.size()  # the different sets of sampled values; None: a continuous axis
        self._reported: dict[str, set[int]] = {}
        self._reset_index()
        multi = len(objectives) > 1
        super().__init__(
            space=SpaceSampler(space, grid),
            metric=list(objectives) if multi else objectives[0],
            mode=list(modes) if multi else modes[0],
            sampler=sampler,
            study_name=study_name,
            storage=open_storage(storage_url),
        )
        with warnings.catch_warnings():  # experimental in Optuna; optuna-dashboard and the CLI show the names
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._study.set_metric_names(list(objectives))

    @property
    def _study(self) -> optuna.Study:
        if self._ot_study is None:
            raise RuntimeError("the Optuna study is created in __init__; this searcher was not set up")
        return self._ot_study

    def restore(self, checkpoint_path: str) -> None:
        """Restore the sampler and trial bookkeeping saved with a Ray run, keeping *this* searcher's storage.

        OptunaSearch pickles its whole state, Optuna study and storage URL included; a study folder copied or
        moved since would otherwise write into the original's storage. Each restored trial is bound again to
        the same trial id in the current storage (a copy holds the same ids).
        """
        keep = ("_storage", "_storage_url", "_ot_study")
        bound: dict[str, object] = {k: self.__dict__[k] for k in keep if k in self.__dict__}
        try:
            super().restore(checkpoint_path)
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError) as exc:
            # Written by a driver killed mid-copy before caesweep wrote it atomically: the Optuna storage holds
            # everything the bookkeeping is made of (each trial's Ray id and state); the sampler starts afresh.
            logger.warning("the searcher state %s is unreadable (%s: %s); its trials are found again in the "
                           "Optuna storage", checkpoint_path, type(exc).__name__, exc)
            self.__dict__.update(bound)
            self._reset_index()
            self._reported = {}
            self._bind_from_storage()
            return
        self.__dict__.update(bound)
        self._reset_index()
        self._reported = {}
        self._ot_trials = {  # saved as Optuna trial ids (as optuna.Trial objects by earlier versions)
            rid: optuna.Trial(self._study, t if isinstance(t, int) else t._trial_id)
            for rid, t in self._ot_trials.items()
        }

    def _bind_from_storage(self) -> None:
        """Each Ray trial recorded in the storage bound to its Optuna trial; the finished ones marked told."""
        self._ot_trials = {}
        for frozen in self._study.get_trials(deepcopy=False):
            rid = frozen.user_attrs.get(RAY_TRIAL_ATTR)
            if isinstance(rid, str):
                self._ot_trials[rid] = optuna.Trial(self._study, frozen._trial_id)
                if frozen.state.is_finished():
                    self._completed_trials.add(rid)

    def save(self, checkpoint_path: str) -> None:
        """Save what :meth:`restore` needs (sampler, trial bookkeeping) without the study: its size stays that of
        the bookkeeping, not of every trial's record."""
        state = {k: v for k, v in self.__dict__.items() if k not in _NOT_SAVED}
        state["_ot_trials"] = {rid: t._trial_id for rid, t in self._ot_trials.items()}
        with open(checkpoint_path, "wb") as stream:
            pickle.dump(state, stream)

    # --- suggestions ---------------------------------------------------------------------------------

    def suggest(self, trial_id: str) -> dict | str | None:  # type: ignore[override]
        adopted = False
        if trial_id not in self._ot_trials:
            orphan = self._find_orphan()
            if orphan is not None:
                logger.info("trial %s adopts Optuna trial %d left running by a stopped driver", trial_id, orphan)
                for stale in [rid for rid, t in self._ot_trials.items() if t._trial_id == orphan]:
                    del self._ot_trials[stale]  # a Ray trial Ray cannot continue
                self._ot_trials[trial_id] = optuna.Trial(self._study, orphan)
                adopted = True
        params = super().suggest(trial_id)
        if params is None or adopted or self._grid:  # a grid never repeats a point; an adopted trial is itself
            if params is not None:
                self._ot_trials[trial_id].set_user_attr(RAY_TRIAL_ATTR, trial_id)
            return params
        for _ in range(MAX_REDRAWS):
            ot_trial = self._ot_trials[trial_id]
            twin = self._twin(ot_trial)
            if twin is None:
                ot_trial.set_user_attr(RAY_TRIAL_ATTR, trial_id)
                return params
            self._tell_as_twin(ot_trial, twin)
            del self._ot_trials[trial_id]
            if self._size is not None and len(self._firsts) >= self._size:
                print(f"note: all {self._size} configurations of the space are trained; the study stops here",
                      flush=True)
                return Searcher.FINISHED
            params = super().suggest(trial_id)
        last = self._ot_trials.pop(trial_id)
        self._tell_as_twin(last, self._twin(last))
        print(f"note: the sampler proposed only configurations already trained ({MAX_REDRAWS} draws in a row); "
              "the space looks exhausted, so the study stops here", flush=True)
        return Searcher.FINISHED

    # --- no configuration trained twice ------------------------------------------------------------------

    def _twin(self, ot_trial: optuna.Trial) -> FrozenTrial | None:
        """An earlier trial with exactly the same sampled values (the training seed is the study's for all)."""
        params = self._study._storage.get_trial_params(ot_trial._trial_id)
        self._index_trials(ot_trial._trial_id)
        first = self._firsts.get(params_key(params))
        return None if first is None else self._study._storage.get_trial(first)

    def _reset_index(self) -> None:
        self._firsts: dict[Hashable, int] = {}  # sampled values -> Optuna trial id of the first trial with them
        self._indexed = 0  # the study's trials (in number order) looked at so far
        self._waiting: set[int] = set()  # enqueued (WAITING) trials seen, indexed once they run
        self._orphans: list[int] | None = None  # RUNNING in the storage when this searcher first proposed

    def _index_trials(self, proposed: int) -> None:
        """Index the study's trials not indexed yet, up to the one being proposed (its fate is not decided):
        each new trial is looked at once, whatever the study's size. A proposal told as a repeat is no twin."""
        trials = self._study.get_trials(deepcopy=False)
        waiting = [self._study._storage.get_trial(trial_id) for trial_id in self._waiting]
        self._waiting.clear()
        for frozen in [*waiting, *trials[self._indexed:]]:
            if frozen._trial_id == proposed:
                break
            if frozen.number >= self._indexed:
                self._indexed = frozen.number + 1
            if frozen.state == TrialState.WAITING:
                self._waiting.add(frozen._trial_id)
            elif DUPLICATE_ATTR not in frozen.user_attrs:
                self._firsts.setdefault(params_key(frozen.params), frozen._trial_id)

    def _tell_as_twin(self, ot_trial: optuna.Trial, twin: FrozenTrial | None) -> None:
        """Tell the sampler what a repeated proposal would give: the earlier trial's recorded outcome."""
        if twin is None:
            self._study.tell(ot_trial, state=TrialState.FAIL)
            return
        ot_trial.set_user_attr(DUPLICATE_ATTR, twin.number)
        if twin.state == TrialState.COMPLETE and twin.values is not None:
            self._study.tell(ot_trial, twin.values if len(twin.values) > 1 else twin.values[0])
        elif twin.state == TrialState.PRUNED:
            self._study.tell(ot_trial, state=TrialState.PRUNED)
        else:  # failed, or still running: nothing to learn yet
            self._study.tell(ot_trial, state=TrialState.FAIL)

    def _find_orphan(self) -> int | None:
        """An Optuna trial RUNNING in the storage that no live Ray trial owns (its driver died), or that was
        freed from a Ray trial Ray cannot continue.

        Only a dead driver leaves such trials, so the storage is searched once, at this searcher's first
        proposal (after a restore: its first one then); every later trial is this searcher's own.
        """
        if self._orphans is None:
            self._orphans = [t._trial_id for t in self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
        while self._orphans:
            owned = {t._trial_id for t in self._ot_trials.values()}
            candidate = self._orphans.pop(0)
            frozen = self._study._storage.get_trial(candidate)
            if frozen.state != TrialState.RUNNING:
                continue
            # Not held by a Ray trial of this run; or held in a saved state newer than the run's trial list,
            # by a Ray trial that Ray cannot continue (reconcile.release_unrecorded freed it).
            if candidate not in owned or frozen.user_attrs.get(RAY_TRIAL_ATTR) is None:
                return candidate
        return None

    # --- results ---------------------------------------------------------------------------------------

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._report(trial_id, result)

    def _report(self, trial_id: str, result: dict | None) -> None:
        report = reports.read(result)
        if isinstance(self.metric, list) or trial_id in self._completed_trials or isinstance(report, FailedReport):
            return  # Optuna has no intermediate values for multi-objective studies
        epoch = reports.epoch_of(report)
        ot_trial = self._trial_for(trial_id)
        if ot_trial is None or epoch is None:
            return
        value = epoch.record.get(self.metric, epoch.costs.get(self.metric))  # the epoch's own value, as ASHA sees
        if value is None or not math.isfinite(value):
            return
        step = epoch.epoch
        done = self._reported.get(trial_id)
        if done is None:  # first seen by this driver: what a driver before it reported is in the storage
            done = self._reported[trial_id] = set(ot_trial.storage.get_trial(ot_trial._trial_id).intermediate_values)
        if step not in done:
            ot_trial.report(float(value), step)
            done.add(step)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials:
            return
        ot_trial = self._trial_for(trial_id)
        if ot_trial is None:
            logger.warning("no Optuna trial is recorded for Ray trial %s; nothing to tell", trial_id)
            return
        if ot_trial.storage.get_trial(ot_trial._trial_id).state.is_finished():
            self._completed_trials.add(trial_id)
            return  # told before a restart: telling twice would duplicate it
        result = result or {}
        self._report(trial_id, result)  # the result that made the scheduler stop it never reached us
        self._completed_trials.add(trial_id)
        self._reported.pop(trial_id, None)
        for key in SHOWN_ATTRS:  # what a person reads in optuna-dashboard or `optuna trials`
            value = result.get(key)
            if isinstance(value, (str, int, float)) and not (isinstance(value, float) and not math.isfinite(value)):
                ot_trial.set_user_attr(key, value)
        report = reports.read(result)
        if error or isinstance(report, FailedReport):
            reason = report.error if isinstance(report, FailedReport) else None
            ot_trial.set_user_attr(FAIL_REASON_ATTR,
                                   (reason or "the trial raised an exception (see its error.txt under ray/)")[:500])
            self._study.tell(ot_trial, state=TrialState.FAIL)
            return
        if not isinstance(report, FinalReport):
            # Ended without the trial's own final report: the scheduler stopped it early.
            self._study.tell(ot_trial, state=TrialState.PRUNED)
            return
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        values = [report.objective(metric) for metric in metrics]  # val metrics at the kept epoch, not the last
        if any(value is None for value in values):
            ot_trial.set_user_attr(FAIL_REASON_ATTR, "objective missing or not finite in the final result")
            self._study.tell(ot_trial, state=TrialState.FAIL)
        else:
            told = [float(v) for v in values if v is not None]
            self._study.tell(ot_trial, told if len(told) > 1 else told[0])

    def _trial_for(self, trial_id: str) -> optuna.Trial | None:
        """The Optuna trial of a Ray trial, found again through the storage after a restart."""
        if trial_id in self._ot_trials:
            return self._ot_trials[trial_id]
        for frozen in self._study.get_trials(deepcopy=False):
            if frozen.user_attrs.get(RAY_TRIAL_ATTR) == trial_id:
                self._ot_trials[trial_id] = optuna.Trial(self._study, frozen._trial_id)
                return self._ot_trials[trial_id]
        return None
