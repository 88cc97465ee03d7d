"""Fixtures for the analysis tests: the realistic study, a factory for edge-case studies, and one full report.

The study folders are described in :mod:`tests.analysis.built_studies`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from results import study_paths
from tests.analysis.browser import BROWSERS, find_browser
from tests.analysis.built_studies import (
    BEST_MODEL,
    Ran,
    StudyFactory,
    realistic_rows,
    run_report,
    save_tiny_model,
    write_study,
)


@pytest.fixture(scope="session")
def study_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results root holding the ``realistic`` study (with a saved model for its best trial)."""
    root = tmp_path_factory.mktemp("results")
    rows, history = realistic_rows()
    write_study(root, "realistic", rows, history, status="running")
    save_tiny_model(study_paths("realistic", root).model_path(BEST_MODEL))
    return root


@pytest.fixture
def make_study(tmp_path: Path) -> StudyFactory:
    """``make_study(name, rows, history=(), **meta) -> root``: a one-study results root in ``tmp_path``."""

    def make(
        name: str, rows: Iterable[Mapping[str, Any]], history: Iterable[Mapping[str, Any]] = (), **meta: Any
    ) -> Path:
        write_study(tmp_path / "results", name, rows, history, **meta)
        return tmp_path / "results"

    return make


@pytest.fixture(scope="session")
def realistic_report(study_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    """The full report of the realistic study (image grid included), written once for every test to read."""
    folder = tmp_path_factory.mktemp("report")
    return run_report(["--study", "realistic", "--root", str(study_root), "--out", str(folder)], folder)


@pytest.fixture(scope="session")  # session scope: resolved before the session-scoped report is built
def browser() -> str:
    """The headless browser binary, or a skip with the reason."""
    path = find_browser()
    if path is None:
        pytest.skip(f"no headless browser found ({', '.join(BROWSERS)} not on PATH); `.ci/run` installs chromium")
    return path
