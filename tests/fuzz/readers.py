"""Every fuzzed reader: its inputs (a strategy) and one case of its property (see :mod:`tests.fuzz.harness`).

``tests/fuzz/test_readers.py`` runs each reader for a small seeded number of inputs in ``make test``;
``python -m benchmarks.fuzz`` runs them for thousands. To fuzz another command (``search run``,
``search resume``), add a :class:`Reader` whose ``case`` builds what the command reads in the sandbox and
calls :func:`~tests.fuzz.harness.run_cli` with the folders it may write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.analysis.built_studies import realistic_rows, write_study
from tests.fuzz import strategies as fs
from tests.fuzz.harness import Sandbox, check, run_cli, sandbox


@dataclass(frozen=True)
class Reader:
    """One reader of user input: what to draw, and how to run and check one drawn input."""

    name: str
    inputs: st.SearchStrategy[Any]
    case: Callable[[Any], None]  # raises AssertionError when the property breaks
    what: str


def _in_sandbox(box: Sandbox, argv: Sequence[str]) -> list[str]:
    return [token.replace("{root}", str(box.root)) for token in argv]


def _prepared(prepare: Callable[[Sequence[str] | None], Callable[[], int]]) -> Callable[[Sequence[str] | None], int]:
    """A ``main`` that checks the whole command line (``prepare``) and stops before the work itself."""

    def main(argv: Sequence[str] | None) -> int:
        prepare(argv)
        return 0

    return main


# --- space files -------------------------------------------------------------------------------------------


def _load_space(argv: Sequence[str] | None) -> int:
    """What ``search run --space FILE`` does with the file: load it, and rebuild it as a study would."""
    from spaces import load_space, space_from_dict

    assert argv is not None
    space = load_space(argv[0])
    space_from_dict(space.to_dict())
    return 0


def space_case(content: bytes) -> None:
    with sandbox() as box:
        (box.cwd / "space.yaml").write_bytes(content)
        check(run_cli(_load_space, ["space.yaml"], box))


# --- study folders -----------------------------------------------------------------------------------------


def _load_study(argv: Sequence[str] | None) -> int:
    """What ``search resume``, ``search list`` and the report read first: ``results.load_study``."""
    import results

    assert argv is not None
    results.load_study(results.study_paths(argv[0], argv[1]))
    return 0


def load_study_case(files: Mapping[str, bytes | fs.Special | None]) -> None:
    with sandbox() as box:
        fs.write_folder(box.root, files)
        check(run_cli(_load_study, [fs.STUDY, str(box.root)], box))


def search_list_case(files: Mapping[str, bytes | fs.Special | None]) -> None:
    from search.cli import main

    with sandbox() as box:
        fs.write_folder(box.root, files)
        check(run_cli(main, ["list", "--root", str(box.root)], box), exit_codes=(0,))


def report_study_case(files: Mapping[str, bytes | fs.Special | None]) -> None:
    from analysis.report import main

    with sandbox() as box:
        folder = fs.write_folder(box.root, files)
        argv = ["--study", fs.STUDY, "--root", str(box.root), "--no-images"]
        check(run_cli(main, argv, box, allowed=[folder / "report"]))


# --- command lines -----------------------------------------------------------------------------------------


def train_options_case(argv: list[str]) -> None:
    from cae.train import prepare

    with sandbox() as box:
        check(run_cli(_prepared(prepare), _in_sandbox(box, argv), box))


def benchmark_options_case(argv: list[str]) -> None:
    from benchmarks.cli import prepare

    with sandbox() as box:
        check(run_cli(_prepared(prepare), _in_sandbox(box, argv), box))


def search_options_case(argv: list[str]) -> None:
    """``python -m search`` with fuzzed options, checked up to the point where work would start (nothing
    written); resume and confirm find a genuine study."""
    from search.cli import prepare

    with sandbox() as box:
        write_study(box.root, fs.STUDY, *_ROWS)
        check(run_cli(_prepared(prepare), _in_sandbox(box, argv), box))


def study_resume_case(files: Mapping[str, bytes | fs.Special | None]) -> None:
    """``search resume`` and ``search confirm`` of a fuzzed study folder, checked before any work starts."""
    from search.cli import prepare

    with sandbox() as box:
        fs.write_folder(box.root, files)
        for command in (["resume"], ["confirm", "--top", "1", "--repeats", "1"]):
            check(run_cli(_prepared(prepare), [*command, "--study", fs.STUDY, "--root", str(box.root)], box))


_REPORT_BASE = ("--root", "{root}", "--no-images")
_ROWS = realistic_rows()


def report_options_case(argv: list[str]) -> None:
    """The report on a genuine study, with fuzzed options; it may write its report folder and ``--out``."""
    from analysis.report import main

    with sandbox() as box:
        folder = write_study(box.root, fs.STUDY, *_ROWS)
        study = [] if any(token.startswith("--study") for token in argv) else ["--study", fs.STUDY]
        full = _in_sandbox(box, [*_REPORT_BASE, *study, *argv])
        outs = [full[i + 1] for i, token in enumerate(full[:-1]) if token == "--out"]
        outs += [token.split("=", 1)[1] for token in full if token.startswith("--out=")]
        check(run_cli(main, full, box, allowed=[folder / "report", *map(Path, outs)]))


READERS = {
    reader.name: reader
    for reader in (
        Reader("space-file", fs.space_files, space_case, "space YAML (mutated, random, aliases, bytes)"),
        Reader("study-load", fs.study_folders, load_study_case, "study.json/trials.csv/history.csv: load_study"),
        Reader("study-list", fs.study_folders, search_list_case, "the same study folders: search list"),
        Reader("study-report", fs.study_folders, report_study_case, "the same: analysis.report --no-images"),
        Reader("train-options", fs.argv_for(fs.TRAIN_OPTIONS), train_options_case, "python -m cae.train options"),
        Reader("report-options", fs.argv_for(fs.REPORT_OPTIONS), report_options_case, "analysis.report options"),
        Reader("benchmark-options", fs.benchmark_argv, benchmark_options_case, "python -m benchmarks options"),
        Reader("search-options", fs.search_argv, search_options_case, "python -m search run/resume/confirm"),
        Reader("study-resume", fs.study_folders, study_resume_case, "fuzzed study folders: resume and confirm"),
        Reader("hostile-load", fs.hostile_folders(), load_study_case, "links out, FIFOs, /dev/zero, huge: load_study"),
        Reader("hostile-list", fs.hostile_folders(), search_list_case, "the same hostile folders: search list"),
        Reader("hostile-report", fs.hostile_folders(), report_study_case, "the same: analysis.report --no-images"),
        Reader("hostile-resume", fs.hostile_folders(), study_resume_case, "the same: resume and confirm"),
    )
}
