"""results: study folders that are corrupt in the ways the fuzzer found are one-line StudyErrors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import results
from cae.cli import one_line, run
from cae.errors import StudyError
from tests.analysis.built_studies import meta_for, realistic_rows, write_study


@pytest.fixture
def study(tmp_path: Path) -> results.StudyPaths:
    write_study(tmp_path, "s", *realistic_rows())
    return results.study_paths("s", tmp_path)


def test_a_genuine_study_loads_with_numeric_columns(study: results.StudyPaths) -> None:
    loaded = results.load_study(study)
    assert loaded.trials["val_mse"].dtype.kind == "f" and loaded.history["epoch"].dtype.kind in "if"
    assert len(loaded.trials) == 20


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "is corrupt (not valid JSON)"),  # RecursionError in json
        (b"\xff\xfe", "is corrupt (not valid JSON)"),
        (b" " * (results.folder.MAX_META_BYTES + 1), "is larger than 16,777,216 bytes"),
    ],
)
def test_unreadable_study_json(study: results.StudyPaths, content: bytes, expected: str) -> None:
    study.meta.write_bytes(content)
    with pytest.raises(StudyError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        results.read_meta(study)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"metric": "foo"}, "its metric 'foo' is not a numeric column"),
        ({"metric": "status"}, "its metric 'status' is not a numeric column"),
        ({"metric": None}, "its metric None"),
        ({"mode": "up"}, "its mode 'up' is not 'min' or 'max'"),
        ({"roles": "x"}, "its roles 'x' are not a mapping"),
        ({"params": [1]}, "its params [1] are not a list of parameter names"),
    ],
)
def test_metadata_a_ranking_cannot_use_is_corrupt(
    study: results.StudyPaths, change: dict[str, object], expected: str
) -> None:
    study.meta.write_text(json.dumps(meta_for("s", **change)))
    with pytest.raises(StudyError) as info:
        results.load_study(study)
    assert expected in str(info.value) and "restore it" in str(info.value)


def test_a_non_number_in_a_numeric_column_names_column_and_row(study: results.StudyPaths) -> None:
    lines = study.trials_csv.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[3].split(",")
    row[header.index("val_mse")] = "abc"
    study.trials_csv.write_text("\n".join([*lines[:3], ",".join(row), *lines[4:]]) + "\n")
    with pytest.raises(StudyError, match="trials.csv is corrupt: column val_mse holds 'abc' in row 3, not a number"):
        results.load_study(study)


def test_infinite_and_missing_values_are_numbers(study: results.StudyPaths) -> None:
    text = study.history_csv.read_text().splitlines()
    header = text[0].split(",")
    row = text[1].split(",")
    row[header.index("val_mse")], row[header.index("seconds")] = "inf", ""
    study.history_csv.write_text("\n".join([text[0], ",".join(row), *text[2:]]) + "\n")
    history = results.load_study(study).history
    assert history["val_mse"].iloc[0] == float("inf") and history["seconds"].isna().iloc[0]


def test_user_errors_stay_on_one_line_whatever_they_quote(capsys: pytest.CaptureFixture[str]) -> None:
    def main(argv: object) -> int:
        raise StudyError("unknown key '\r'; a parser said: line 1\nline 2\u2028end")

    assert run(main, []) == 2
    err = capsys.readouterr().err
    assert err == "error: unknown key '\\r'; a parser said: line 1\\nline 2\\u2028end\n"
    assert one_line("ünïcödé stays") == "ünïcödé stays"


@pytest.mark.parametrize(("cell", "value", "expected"), [
    ("status", "", "row 2 has status nan, not one of COMPLETE"),
    ("status", "DONE", "row 2 has status 'DONE'"),
    ("trial_id", "", "row 2 has no trial_id"),
])
def test_a_trial_row_without_id_or_known_status_is_corrupt(
    study: results.StudyPaths, cell: str, value: str, expected: str
) -> None:
    lines = study.trials_csv.read_text().splitlines()
    row = lines[2].split(",")
    row[lines[0].split(",").index(cell)] = value
    study.trials_csv.write_text("\n".join([*lines[:2], ",".join(row), *lines[3:]]) + "\n")
    with pytest.raises(StudyError, match=expected):
        results.load_study(study)
