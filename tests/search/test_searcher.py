"""The searcher's bookkeeping across a killed driver, on a real Optuna storage (no Ray cluster: the searcher is
driven as Ray Tune drives it, suggest / save / restore)."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from results.reports import EpochReport, FinalReport
from search.reconcile import release_unrecorded
from search.samplers import make_sampler
from search.searcher import ABANDONED_ATTR, DUPLICATE_ATTR, RAY_TRIAL_ATTR, StudySearch
from spaces import load_space


def searcher(space: Path, storage: str) -> StudySearch:
    return StudySearch(load_space(str(space)), objectives=["val_mse"], modes=["min"],
                       sampler=make_sampler("random", 0), storage_url=storage, study_name="s")


def final(val_mse: float, params: int = 1000) -> dict:
    """A trial's final report, as every trainable writes it (``results.reports``): one epoch, kept."""
    last = EpochReport(1, {"val_mse": val_mse}, kept={"val_mse": val_mse}, costs={"params": params})
    return FinalReport(last, epochs=1, best_epoch=1).to_dict()


def trained(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials a Ray trial trains (a proposal repeating an earlier one is told its outcome, never trained)."""
    return [t for t in study.get_trials(deepcopy=False) if DUPLICATE_ATTR not in t.user_attrs]


def test_a_trial_missing_from_rays_saved_trials_is_trained_again_under_its_optuna_number(
    tmp_path: Path, tiny_space: Path
) -> None:
    """The searcher's saved state holds Ray trial ``b`` while Ray's trial list (saved apart from it) does not:
    Ray cannot continue ``b``, so its Optuna trial, freed, is adopted by the next Ray trial (same number, same
    parameters) and nothing is counted twice; ``a``, which Ray continues, keeps its own."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = searcher(tiny_space, storage)
    params = {rid: first.suggest(rid) for rid in ("a", "b")}
    state = tmp_path / "searcher-state.pkl"
    first.save(str(state))  # the driver is killed here; Ray's trial list was saved before "b" started

    assert release_unrecorded(storage, "s", {"b"}) == {"b": 1}
    restored = searcher(tiny_space, storage)
    restored.restore(str(state))
    assert restored.suggest("c") == params["b"]
    fresh = restored.suggest("d")

    study = optuna.load_study(study_name="s", storage=storage)
    trials = trained(study)
    assert [(t.number, t.state, t.user_attrs.get(RAY_TRIAL_ATTR)) for t in trials] == [
        (0, TrialState.RUNNING, "a"), (1, TrialState.RUNNING, "c"), (trials[2].number, TrialState.RUNNING, "d"),
    ]
    assert trials[1].user_attrs[ABANDONED_ATTR] == "b" and ABANDONED_ATTR not in trials[0].user_attrs
    assert fresh == trials[2].params
    # Results of the Ray trials reach the Optuna trials that own them now.
    restored.on_trial_complete("c", final(0.25))
    restored.on_trial_complete("a", final(0.5))
    assert [t.value for t in trained(study)[:2]] == [0.5, 0.25]


def test_a_finished_trial_missing_from_rays_saved_trials_is_kept(tmp_path: Path, tiny_space: Path) -> None:
    """A Ray trial whose Optuna trial is already told (it ended before the kill) is no trial to train again."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = searcher(tiny_space, storage)
    first.suggest("a")
    first.on_trial_complete("a", final(0.5))
    assert release_unrecorded(storage, "s", {"a", "x"}) == {"x": None}
    (trial,) = optuna.load_study(study_name="s", storage=storage).get_trials(deepcopy=False)
    assert trial.state == TrialState.COMPLETE and trial.user_attrs[RAY_TRIAL_ATTR] == "a"


def test_a_search_that_trained_every_configuration_stops_at_the_first_repeat(tmp_path: Path, tiny_space: Path) -> None:
    """The tiny space has 8 configurations: once all 8 are trained, the next proposal (a repeat, told the earlier
    trial's outcome) ends the search at once instead of drawing up to MAX_REDRAWS more repeats."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = searcher(tiny_space, storage)
    assert search._size == 8
    for k in range(8):
        assert isinstance(search.suggest(f"t{k}"), dict)
    study = optuna.load_study(study_name="s", storage=storage)
    before = len(study.get_trials(deepcopy=False))
    assert search.suggest("t8") == Searcher.FINISHED
    after = study.get_trials(deepcopy=False)
    assert len(after) == before + 1 and DUPLICATE_ATTR in after[-1].user_attrs
    assert len({tuple(sorted(t.params.items())) for t in trained(study)}) == 8
