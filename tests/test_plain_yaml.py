"""cae.plain_yaml: YAML that is small on disk but expensive to read is refused, quickly and in one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cae import plain_yaml
from cae.errors import SpaceError
from spaces import load_space
from tests.fresh_process import REPO, run_fresh


def billion_laughs(levels: int = 9) -> str:
    """The classic bomb: each level is a list of ten aliases of the level below (10^9 strings at nine)."""
    lines = ['  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "description:\n" + "\n".join(lines) + "\nfixed: {max_epochs: 2}\n"


def write(tmp_path: Path, text: str, name: str = "hostile.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


REFUSED = {
    "billion laughs": (billion_laughs(), "alias *l0 is not allowed"),
    "recursive alias": ("description: &d {x: *d}\n", "alias *d is not allowed"),
    "alias in fixed": ("fixed: {max_epochs: &e 3, patience: *e}\n", "alias *e is not allowed"),
    "merge key": ("base: &b {low: 1, high: 2}\nparams: {latent_dim: {<<: *b}}\n", "alias *b is not allowed"),
    "deep nesting": ("description: " + "[" * 5000 + "]" * 5000 + "\n", "nesting deeper than 32 levels"),
    "integer of 5000 digits": ("samples: " + "9" * 5000 + "\n", "cannot be read as an integer"),
    "bool that is not one": ("samples: !!bool maybe\n", "'maybe' cannot be read as a boolean"),
    "explicit int": ("samples: !!int ten\n", "'ten' cannot be read as an integer"),
    "binary": ("description: !!binary aGk=\n", "tag tag:yaml.org,2002:binary is not allowed"),
    "set": ("description: !!set {a, b}\n", "tag tag:yaml.org,2002:set is not allowed"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_hostile_yaml_is_refused_in_one_line(tmp_path: Path, case: str) -> None:
    text, expected = REFUSED[case]
    path = write(tmp_path, text)
    with pytest.raises(SpaceError) as info:
        load_space(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    assert expected in message, message
    assert len(message) < 400, message


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, "description: '" + "x" * plain_yaml.MAX_BYTES + "'\n")
    with pytest.raises(SpaceError, match=r"larger than 1,048,576 bytes"):
        load_space(str(path))


def test_dates_are_read_as_the_text_written() -> None:
    assert plain_yaml.load("a: 2001-12-14\nb: 2001-13-45\nc: !!timestamp soon\nd: 0x10\n") == {
        "a": "2001-12-14", "b": "2001-13-45", "c": "soon", "d": 16,
    }


def test_errors_name_the_line_and_column() -> None:
    with pytest.raises(yaml.YAMLError) as info:
        plain_yaml.load("a: 1\nb: [1, *x]\n")
    assert plain_yaml.describe(info.value) == (
        "alias *x is not allowed: caesweep refuses anchors and aliases in YAML files; write the value out "
        "(line 2, column 8)"
    )


def test_the_bomb_costs_under_a_second_and_bounded_memory_in_a_fresh_process(tmp_path: Path) -> None:
    """What the user sees from the CLI plumbing: one line, exit 2, and a peak memory of a bare interpreter.

    The bounds are generous (an unguarded load takes minutes and gigabytes): the point is the order of
    magnitude, not a timing.
    """
    path = write(tmp_path, billion_laughs(), "it.yaml")
    outcome = run_fresh(f"from spaces import load_space\nload_space({str(path)!r})")
    assert outcome.returncode == 2, outcome.stderr
    assert outcome.stderr.count("\n") == 1
    assert outcome.stderr.startswith(f"error: {path}: invalid YAML: alias *l0")
    assert outcome.cpu_seconds < 1.0, outcome
    assert outcome.peak_mib < 200, outcome  # a Python with numpy imported is ~40 MB; the expanded bomb is GBs


def test_every_yaml_reader_in_caesweep_goes_through_plain_yaml() -> None:
    """No module parses YAML with PyYAML's own entry points, which follow aliases."""
    direct = re.compile(r"\byaml\.(safe_load|load|full_load|unsafe_load|load_all|safe_load_all|compose)\(")
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for package in ("cae", "spaces", "search", "results", "analysis", "benchmarks")
        for path in sorted((REPO / package).rglob("*.py"))
        if path.name != "plain_yaml.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if direct.search(line)
    ]
    assert offenders == []
