"""The schedulers' choice of the next trial is Ray's FIFO choice, made from the trials that have not ended; Ray's
Hyperband as a sweep runs it (search.schedulers.LiveHyperBand)."""

from __future__ import annotations

import pickle
import random

import pytest
from ray import cloudpickle
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

from search.schedulers import LiveASHAScheduler, LiveFIFOScheduler, LiveHyperBand

STATUSES = (Trial.PENDING, Trial.RUNNING, Trial.PAUSED, Trial.TERMINATED, Trial.ERROR)


class Controller:
    """What a scheduler's ``choose_trial_to_run`` reads from Tune's controller: its trials, in order."""

    def __init__(self) -> None:
        self.trials: list[Trial] = []

    def get_trials(self) -> list[Trial]:
        return self.trials


def _schedulers() -> list:
    return [LiveFIFOScheduler(),
            LiveASHAScheduler(time_attr="epoch", metric="loss", mode="min", max_t=8, grace_period=1)]


@pytest.mark.parametrize("scheduler", _schedulers(), ids=["fifo", "asha"])
def test_choice_is_ray_fifo_choice_through_a_random_run(scheduler) -> None:
    """Trials are added and change status at random (ended ones never come back, as in Tune); after every
    change the choice is the one Ray's FIFOScheduler makes by scanning every trial."""
    rng = random.Random(7)
    controller, reference = Controller(), FIFOScheduler()
    checked = {status: 0 for status in (Trial.PENDING, Trial.PAUSED, None)}
    for _ in range(600):
        live = [t for t in controller.trials if t.status not in (Trial.TERMINATED, Trial.ERROR)]
        if not live or rng.random() < 0.1:
            trial = Trial("__fake", stub=True)
            controller.trials.append(trial)
            scheduler.on_trial_add(controller, trial)
        else:
            rng.choice(live).set_status(rng.choices(STATUSES, weights=(1, 3, 2, 2, 1))[0])
        expected = reference.choose_trial_to_run(controller)
        assert scheduler.choose_trial_to_run(controller) is expected
        checked[expected.status if expected is not None else None] += 1
    assert all(checked.values()), checked  # the run met each kind of answer: pending, paused and none


def test_ended_trials_leave_the_list() -> None:
    scheduler, controller = LiveFIFOScheduler(), Controller()
    for _ in range(50):
        trial = Trial("__fake", stub=True)
        controller.trials.append(trial)
        scheduler.on_trial_add(controller, trial)
    for trial in controller.trials[:-1]:
        trial.set_status(Trial.TERMINATED)
    assert scheduler.choose_trial_to_run(controller) is controller.trials[-1]
    assert list(scheduler._live) == controller.trials[-1:]


def test_pickled_scheduler_keeps_no_trials() -> None:
    """The scheduler is pickled with the run's settings; on resume Tune adds every trial to it again."""
    scheduler, controller = LiveASHAScheduler(time_attr="epoch", metric="loss", mode="min"), Controller()
    trial = Trial("__fake", stub=True)
    scheduler.on_trial_add(controller, trial)
    copy = pickle.loads(pickle.dumps(scheduler))
    assert copy._live == {} and scheduler._live == {trial: None}
    assert copy.choose_trial_to_run(controller) is None
    copy.on_trial_add(controller, trial)
    assert copy.choose_trial_to_run(controller) is trial


def _hyperband(max_running: int | None = None) -> LiveHyperBand:
    return LiveHyperBand(time_attr="epoch", metric="loss", mode="min", max_t=3, reduction_factor=3,
                         stop_last_trials=False, max_running=max_running)


def test_hyperband_gives_a_restored_runs_ended_trials_no_bracket_and_is_pickled_without_trials() -> None:
    """Tune adds a restored run's finished trials to the scheduler too; in a bracket they would never reach its
    rung, and the bracket would wait for them for good. A bracket is full once given all its trials (3 for 3
    epochs), ended ones included: a trial that ended does not free its place."""
    scheduler, controller = _hyperband(), Controller()
    ended = Trial("__fake", stub=True)
    ended.set_status(Trial.TERMINATED)
    scheduler.on_trial_add(controller, ended)
    assert ended not in scheduler._trial_info
    scheduler.on_trial_remove(controller, ended)  # Tune's notice for a trial never placed: nothing to do
    trials = [Trial("__fake", stub=True) for _ in range(4)]
    for trial in trials[:3]:
        scheduler.on_trial_add(controller, trial)
    first, _ = scheduler._trial_info[trials[0]]
    first.cleanup_trial(trials[0])  # it ended
    scheduler.on_trial_add(controller, trials[3])
    assert scheduler._trial_info[trials[3]][0] is not first  # the next bracket
    copy = cloudpickle.loads(cloudpickle.dumps(scheduler))  # as Tune pickles it (Ray's lambdas need cloudpickle)
    assert copy._trial_info == {} and copy.max_running is None


def test_hyperband_resumes_no_trial_while_max_running_train() -> None:
    scheduler, controller = _hyperband(max_running=1), Controller()
    for _ in range(3):
        trial = Trial("__fake", stub=True)
        controller.trials.append(trial)
        scheduler.on_trial_add(controller, trial)
    assert scheduler.choose_trial_to_run(controller) is controller.trials[0]  # pending, none running
    controller.trials[0].set_status(Trial.RUNNING)
    assert scheduler.choose_trial_to_run(controller) is None
    assert _hyperband(max_running=2).choose_trial_to_run(controller) is None  # nothing added to that one
