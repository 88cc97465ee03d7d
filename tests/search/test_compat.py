"""Every private attribute caesweep uses (``search.compat``) works on the installed versions, and is refused in
one line on a version it was not tested with."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search import compat


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="s")
    for x in (0.1, 0.2):
        study.tell(study.ask(), x)
    running = study.ask()
    running.suggest_float("x", 0, 1)
    return study


def test_a_running_trial_is_reopened_by_number_and_told_through_it(study: optuna.Study) -> None:
    frozen = compat.trial_by_number(study, 2)
    assert frozen.number == 2 and frozen.state == TrialState.RUNNING and "x" in frozen.params
    reopened = compat.open_trial(study, frozen)
    reopened.report(0.5, 1)
    reopened.set_user_attr("ray_trial_id", "abc")
    study.tell(reopened, 0.3)
    again = compat.trial_by_number(study, 2)
    assert again.state == TrialState.COMPLETE and again.value == 0.3
    assert again.intermediate_values == {1: 0.5} and again.user_attrs == {"ray_trial_id": "abc"}
    assert compat.trial_by_number(study, 0).value == 0.1


def test_an_untested_version_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch, study: optuna.Study) -> None:
    monkeypatch.setattr(compat, "_checked", {})
    monkeypatch.setattr(compat, "installed", lambda name: "9.0.0")
    for call in (lambda: compat.trial_by_number(study, 0), lambda: compat.open_trial(study, study.trials[0]),
                 lambda: compat.rebind_restored(object(), [], None)):
        with pytest.raises(compat.UntestedVersion) as refused:
            call()
        message = str(refused.value)
        assert "\n" not in message and "9.0.0 is installed: run `make install` for a tested version" in message
