"""Hypothesis strategies for the files and command lines users hand to caesweep.

Each input class mixes three kinds of input: valid inputs mutated a little (the inputs that reach deep
code), structurally random ones (random YAML, JSON, CSV) and known-hostile shapes (aliases, deep nesting,
huge numbers, odd encodings). Paths in command lines are drawn from a fixed set inside the case's sandbox
(see :mod:`tests.fuzz.harness`), never free text: a fuzzed ``--out /`` must not write to the real disk.
Free text never contains NUL, which no real argv can hold.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from hypothesis import strategies as st

from cae import plain_yaml
from results import STATUSES
from tests.analysis.built_studies import meta_for, realistic_rows

SHIPPED_SPACES = Path(__file__).resolve().parents[2] / "spaces"

# --- building blocks ---------------------------------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00/"), max_size=20)
weird_numbers = st.sampled_from(
    [0, -1, 1, 2**31, 2**63, -(2**63), 10**30, 0.5, -0.0, 1e-300, 1e300, math.inf, -math.inf, math.nan]
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=True), weird_numbers, text
)
plain_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a value shared twice in full: the valid inputs must not carry aliases, which are refused."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(value: Any) -> str:
    return yaml.dump(value, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True)


# --- space files -------------------------------------------------------------------------------------------


def _shipped_space_dicts() -> list[dict[str, Any]]:
    return [plain_yaml.load_file(path) for path in sorted(SHIPPED_SPACES.glob("*.yaml"))]


@st.composite
def mutated_spaces(draw: st.DrawFn) -> str:
    """A shipped space with a few entries removed, replaced or added, as YAML text."""
    space = json.loads(json.dumps(draw(st.sampled_from(_shipped_space_dicts()))))  # a deep copy
    for _ in range(draw(st.integers(1, 4))):
        node, key = _pick_entry(draw, space)
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete" and key in node:
            del node[key]
        elif action == "add":
            node[draw(text)] = draw(plain_values)
        else:
            node[key] = draw(plain_values)
    return to_yaml(space)


def _pick_entry(draw: st.DrawFn, space: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A mapping inside ``space`` (top level, a section or one parameter) and one of its keys."""
    node = space
    for _ in range(draw(st.integers(0, 2))):
        children = [key for key, value in node.items() if isinstance(value, dict) and value]
        if not children:
            break
        node = node[draw(st.sampled_from(sorted(children)))]
    return node, draw(st.sampled_from(sorted(node))) if node else "params"


_YAML_PIECES = [
    "params:", "fixed:", "samples:", "description:", "  lr: {low: 1.0e-4, high: 1.0e-2, log: true}",
    "  filters: {choices: ['16-32', '32-48-64']}", "  depth: {low: 2, high: 4}", "  filters: {per_level: [8, 16]}",
    "  max_epochs: 3", "  task: reconstruct", "  image_size: 32", "&a [1, 2]", "*a", "&d {x: *d}", "<<: *a",
    "!!python/object/apply:os.system ['true']", "!!binary aGk=", "!!set {a}", "!!int x", "!!float y",
    "2001-13-45", "9" * 5000, "0x" + "f" * 100, ".inf", ".nan", "~", "[" * 50, "]" * 50, "{", "}", "- ", ": ",
    "? ", "'", '"', "\\u0000", "\t", "%YAML 1.1", "---", "...", "#", "|", ">", "1e999", "-0", "0o777",
]


@st.composite
def random_yaml(draw: st.DrawFn) -> str:
    """Lines of YAML-ish pieces and free text, at random indentation: mostly invalid, sometimes hostile."""
    pieces = st.one_of(st.sampled_from(_YAML_PIECES), text)
    lines = draw(st.lists(st.tuples(st.integers(0, 4), st.lists(pieces, min_size=1, max_size=4)), max_size=12))
    return "\n".join(" " * indent + " ".join(parts) for indent, parts in lines)


@st.composite
def alias_spaces(draw: st.DrawFn) -> str:
    """A valid-looking space whose values are reached through anchors and aliases (bombs included)."""
    levels = draw(st.integers(1, 9))
    anchors = ['l0: &l0 ["lol", "lol"]'] + [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, levels)]
    where = draw(st.sampled_from(["description", "fixed", "params"]))
    body = "\n".join("  " + line for line in anchors)
    return f"{where}:\n{body}\n" if draw(st.booleans()) else f"x: &r {{y: *r}}\n{where}: *r\n"


space_texts = st.one_of(mutated_spaces(), random_yaml(), alias_spaces(), mutated_spaces().map(str.encode).map(
    lambda raw: raw.decode("utf-8")
))
space_files = st.one_of(
    space_texts.map(lambda t: t.encode("utf-8")),
    st.binary(max_size=200),  # not UTF-8, or not text at all
)


# --- study folders -----------------------------------------------------------------------------------------

STUDY = "fuzzed"
_TRIALS, _HISTORY = realistic_rows()


@dataclass(frozen=True)
class Special:
    """A study file that is not a regular file of its own, as a folder from anyone may hold one: a link to a
    file or folder outside the study (in the sandbox, where a write through it is seen), a link to /dev/zero, a
    FIFO with no writer, a sparse file larger than any reader's cap, a folder, or a dangling link."""

    kind: str


SPECIAL_KINDS = ("link-out", "link-dev-zero", "fifo", "huge", "folder", "dangling")
HUGE_BYTES = 4 * 2**30  # sparse: no disk used, larger than every cap (study.json 16 MiB, tables 256 MiB)
special_files = st.sampled_from(SPECIAL_KINDS).map(Special)


@st.composite
def study_meta(draw: st.DrawFn) -> bytes | Special | None:
    """study.json: valid, with entries replaced or removed, random JSON, deep nesting, junk, missing, or not a
    regular file (:class:`Special`)."""
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "random", "deep", "junk", "missing", "valid",
                                 "special"]))
    if kind == "missing":
        return None
    if kind == "special":
        return draw(special_files)
    if kind == "junk":
        return draw(st.binary(max_size=100))
    if kind == "deep":
        depth = draw(st.integers(10, 100_000))
        return ("[" * depth + "]" * depth).encode()
    if kind == "random":
        return json.dumps(draw(plain_values)).encode()
    meta = meta_for(STUDY)
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 3))):
            key = draw(st.sampled_from(sorted(meta)))
            if draw(st.booleans()):
                meta.pop(key, None)
            else:
                meta[key] = draw(plain_values)
    return json.dumps(meta, allow_nan=True).encode()


@st.composite
def table_csv(draw: st.DrawFn, rows: list[dict[str, Any]]) -> bytes | Special | None:
    """trials.csv / history.csv: the realistic table with cells, columns or lines mutated, junk, missing, or not
    a regular file (:class:`Special`)."""
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "lines", "junk", "missing", "valid", "empty",
                                 "special"]))
    if kind == "missing":
        return None
    if kind == "special":
        return draw(special_files)
    if kind == "empty":
        return b""
    if kind == "junk":
        return draw(st.binary(max_size=200))
    frame = pd.DataFrame(rows[: draw(st.integers(1, len(rows)))])
    if kind == "mutated":
        frame = frame.astype(object)
        for _ in range(draw(st.integers(1, 6))):
            column = draw(st.sampled_from(list(frame.columns)))
            if draw(st.integers(0, 5)) == 0:
                frame = frame.drop(columns=column)
                if frame.columns.empty:
                    break
                continue
            row = draw(st.integers(0, len(frame) - 1))
            frame.loc[frame.index[row], column] = draw(
                st.one_of(scalars, st.sampled_from(STATUSES), st.sampled_from(["nan", "inf", "-inf", "", "1e999"]))
            )
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    text_out = buffer.getvalue()
    if kind == "lines":
        lines = text_out.splitlines(keepends=True)
        cut = draw(st.integers(0, len(lines)))
        lines.insert(cut, draw(text) + "," * draw(st.integers(0, 40)) + "\n")
        text_out = "".join(lines[: draw(st.integers(cut, len(lines)))])
    return text_out.encode("utf-8", "surrogatepass")


study_folders = st.fixed_dictionaries(
    {"study.json": study_meta(), "trials.csv": table_csv(_TRIALS), "history.csv": table_csv(_HISTORY)},
    # Where the report writes, a handed folder may hold a link out of it (or a folder of its own).
    optional={"report": st.sampled_from([Special("link-out"), Special("dangling"), Special("folder")])},
)
OUTSIDE = "outside"  # beside the results root in the sandbox: what links point to


def _valid_table(rows: list[dict[str, Any]]) -> bytes:
    return pd.DataFrame(rows).to_csv(index=False).encode()


_VALID = {"study.json": json.dumps(meta_for(STUDY)).encode(), "trials.csv": _valid_table(_TRIALS),
          "history.csv": _valid_table(_HISTORY)}


@st.composite
def hostile_folders(draw: st.DrawFn) -> dict[str, bytes | Special]:
    """A genuine study folder with one of its files (or none) replaced by a :class:`Special` one, and sometimes
    its report folder a link out of it: every kind of special file reaches every reader (the mutated folders
    above draw them rarely)."""
    files: dict[str, bytes | Special] = dict(_VALID)
    replaced = draw(st.sampled_from([*sorted(_VALID), "none"]))  # none: the readers get to the report's writes
    if replaced != "none":
        files[replaced] = draw(special_files)
    if draw(st.booleans()):
        files["report"] = draw(st.sampled_from([Special("link-out"), Special("dangling")]))
    return files


def write_folder(root: Path, files: Mapping[str, bytes | Special | None], name: str = STUDY) -> Path:
    """Write a drawn study folder under ``root`` (a ``None`` file is left out; a :class:`Special` one is made
    as it says, its link targets under ``root/../outside``)."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for file, content in files.items():
        if isinstance(content, Special):
            _make_special(folder / file, content.kind, root.parent / OUTSIDE / file)
        elif content is not None:
            (folder / file).write_bytes(content)
    return folder


def _make_special(path: Path, kind: str, outside: Path) -> None:
    if kind == "link-out":  # a file outside the study with content, or a folder with one inside (for report)
        outside.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix:
            outside.write_bytes(b"not the study's\n")
        else:
            outside.mkdir()
            (outside / "report.html").write_bytes(b"not the study's\n")
        path.symlink_to(outside)
    elif kind == "link-dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "huge":
        with open(path, "wb") as stream:
            stream.truncate(HUGE_BYTES)
    elif kind == "folder":
        path.mkdir()
    elif kind == "dangling":
        path.symlink_to(outside.parent / "nothing-here")


# --- command lines -----------------------------------------------------------------------------------------

# Paths relative to the case's working directory (base/a/b/c): existing and missing, folders and files,
# up the tree (still inside the sandbox), with spaces and unicode; "{root}" is the sandbox's results root.
PATHS = st.sampled_from([
    ".", "..", "../..", "out", "out/deeper/still", "../out", "no such dir/x", "ünïcödé", "-", "--", "",
    "{root}", "{root}/fuzzed", "{root}/fuzzed/study.json", "{root}/fuzzed/report", "{root}/missing",
    "file.txt", "file.txt/inside", "{root}/fuzzed/trials.csv/x", "x.keras", "out/x.json", "x.yaml",
])
INTS = st.one_of(st.integers(-5, 300), weird_numbers.map(str), text).map(str)
FLOATS = st.one_of(st.floats(allow_nan=True), st.integers(-5, 5), weird_numbers, text).map(str)
DATA_SPECS = st.one_of(
    st.sampled_from(["embedded", "cifar10", "folder", "folder:", "cifar10:", "embedded:x", "imagenet"]),
    PATHS.map(lambda p: f"folder:{p}"), PATHS.map(lambda p: f"cifar10:{p}"), text,
)


def _choice(*values: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(values), text)


@st.composite
def argv_for(
    draw: st.DrawFn, options: Mapping[str, st.SearchStrategy[str] | None], prefix: tuple[str, ...] = ()
) -> list[str]:
    """A command line: some of ``options`` (None: a flag) with drawn values, in any order, sometimes with
    a stray token, a repeated option, an ``--opt=value`` form or a missing value."""
    argv = list(prefix)
    for option in draw(st.lists(st.sampled_from(sorted(options)), max_size=6)):
        values = options[option]
        if values is None:
            argv.append(option)
        elif draw(st.integers(0, 9)) == 0:
            argv.append(option)  # value missing
        elif draw(st.booleans()):
            argv += [option, draw(values)]
        else:
            argv.append(f"{option}={draw(values)}")
    if draw(st.integers(0, 5)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(st.one_of(text, st.sampled_from(["-h", "--", "-x"]))))
    return argv


TRAIN_OPTIONS: dict[str, st.SearchStrategy[str] | None] = {
    "--task": _choice("reconstruct", "reconstruct-gray", "colorize-rgb", "colorize-yuv", "colorize-lab", "denoise"),
    "--data": DATA_SPECS, "--image-size": INTS, "--limit": INTS, "--epochs": INTS,
    "--filters": _choice("32-48-64", "8,16", "16-32-64-128-256-512", "0-1", "-8", "8--16", "1e3"),
    "--convs-per-level": INTS, "--kernel-size": INTS, "--latent-dim": INTS,
    "--activation": _choice("relu", "tanh", "gelu", "elu", "swish"), "--batch-norm": None, "--skip": None,
    "--upsample": _choice("upsampling", "transpose"), "--lr": FLOATS, "--batch-size": INTS,
    "--loss": _choice("mse", "mae", "ssim", "mse+ssim", "perceptual"), "--patience": INTS, "--noise": FLOATS,
    "--seed": INTS, "--json": PATHS, "--save": PATHS, "--verbose": None,
}
REPORT_OPTIONS: dict[str, st.SearchStrategy[str] | None] = {
    "--study": _choice(STUDY, "missing", "..", "../fuzzed", ".fuzzed", "a" * 101, "benchmarks"),
    "--root": PATHS, "--top": INTS,
    "--metric": _choice("val_mse", "test_psnr", "skill", "params", "status", "lr", "trial_id", "epochs"),
    "--out": PATHS, "--no-images": None,
}
BENCHMARK_RUN_OPTIONS: dict[str, st.SearchStrategy[str] | None] = {
    "--data": DATA_SPECS, "--budget": INTS, "--seeds": INTS, "--root": PATHS, "--limit": INTS,
    "--image-size": INTS, "--table": PATHS, "--concurrency": INTS,
}
BENCHMARK_TABLE_OPTIONS: dict[str, st.SearchStrategy[str] | None] = {
    "--data": DATA_SPECS, "--out": PATHS, "--space": PATHS, "--limit": INTS, "--epochs": INTS,
    "--max-configs": INTS, "--seed": INTS,
}
benchmark_argv = st.one_of(
    st.just(["list"]),
    st.sampled_from(["seed-architectures", "seed-colorization", "engines", "overhead", "nope", ""]).flatmap(
        lambda name: argv_for(BENCHMARK_RUN_OPTIONS, ("run", name))
    ),
    argv_for(BENCHMARK_TABLE_OPTIONS, ("build-table",)),
    st.lists(text, max_size=4),
)

SEARCH_RUN_OPTIONS: dict[str, st.SearchStrategy[str] | None] = {
    "--space": _choice("quick", "architecture", "colorization", "loss", "no-such-space", "x.yaml", "{root}"),
    "--study": _choice("fuzz-study", "..", "a/b", ".hidden", "a" * 101, "benchmarks", ""),
    "--data": DATA_SPECS,
    "--task": _choice("reconstruct", "reconstruct-gray", "colorize-rgb", "colorize-yuv", "colorize-lab", "denoise"),
    "--samples": INTS, "--max-epochs": INTS, "--limit": INTS, "--seed": INTS, "--split-seed": INTS,
    "--sampler": _choice("tpe", "random", "cmaes", "gp", "qmc", "grid", "nsga2"),
    "--scheduler": _choice("asha", "none", "pbt"),
    "--objectives": _choice("val_mse", "val_mse,params", "val_psnr", "params,params", "beauty", ""),
    "--cpus-per-trial": FLOATS, "--gpus-per-trial": FLOATS, "--gpu-memory": _choice("limit", "growth"),
    "--concurrency": INTS, "--max-failures": INTS,
    "--storage": _choice("sqlite:///{root}/x.db", "sqlite:////nonexistent/x.db", "sqlite://", "postgresql://u:p@/db",
                         "mysql://u@127.0.0.1:9/db", "not a url"),
    "--engine": _choice("ray", "keras-tuner"), "--kt-tuner": _choice("hyperband", "bayesian", "random"),
    "--root": PATHS, "--shared-root": None, "--verbose": None,
}
SEARCH_STUDY_OPTIONS: dict[str, st.SearchStrategy[str] | None] = {
    "--samples": INTS, "--top": INTS, "--repeats": INTS, "--verbose": None,
}
# The search CLI's commands, never with --address: a fuzzed address must not reach any host.
search_argv = st.one_of(
    argv_for(SEARCH_RUN_OPTIONS, ("run", "--limit", "8")),
    st.sampled_from(["resume", "confirm"]).flatmap(
        lambda command: argv_for(SEARCH_STUDY_OPTIONS, (command, "--study", STUDY, "--root", "{root}"))
    ),
    st.lists(text, max_size=4),
)
