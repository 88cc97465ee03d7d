"""The schedulers' choice of the next trial is Ray's FIFO choice, made from the trials that have not ended."""

from __future__ import annotations

import pickle
import random

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

from search.schedulers import LiveASHAScheduler, LiveFIFOScheduler

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
