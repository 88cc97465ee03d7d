"""The dependencies that can break a study are bounded, and an installed version outside the bounds fails here
with one line (``make test`` prints the resolved versions first: ``python -m search.compat``)."""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from search import compat


def test_the_installed_versions_are_the_tested_ones() -> None:
    problems = compat.check_versions()
    assert not problems, "\n".join(problems)


def test_each_guarded_dependency_is_bounded_above_and_admits_the_version_last_tested() -> None:
    declared = compat.bounds()
    assert set(declared) == set(compat.GUARDED) == set(compat.TESTED)
    for name, requirement in declared.items():
        assert any(spec.operator == "<" for spec in requirement.specifier), requirement
        assert requirement.specifier.contains(Version(compat.TESTED[name])), (name, compat.TESTED[name])


def test_a_version_outside_the_bounds_or_an_unbounded_requirement_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compat, "installed", lambda name: "5.2.0" if name == "optuna" else compat.TESTED[name])
    (line,) = compat.check_versions()
    assert line.startswith("optuna 5.2.0 is installed but caesweep is tested with ") and "\n" not in line
    assert "<5.2" in line and "(last with 5.1.0)" in line

    bounded = compat.bounds()
    monkeypatch.setattr(compat, "installed", lambda name: compat.TESTED[name])
    monkeypatch.setattr(compat, "bounds", lambda project="caesweep": {**bounded, "ray": Requirement("ray>=2.40")})
    assert compat.check_versions() == [
        "caesweep requires ray>=2.40 with no upper bound: bound it below the next release not yet tested "
        "(tested: 2.60.0)"
    ]


def test_the_versions_are_printed_with_their_bounds(capsys: pytest.CaptureFixture[str]) -> None:
    assert compat.main() == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(compat.GUARDED)
    assert all("(allowed >=" in line and "; tested " in line for line in lines)
