"""Reading search spaces from YAML: the shipped ones by name, the user's own by path.

A space file is a mapping with (all optional) ``description``, ``samples``, ``fixed`` and ``params``; the
space is named after the file. Files are parsed with :mod:`cae.plain_yaml` only, so tags that would construct
Python objects (``!!python/object/apply:...``) are refused, never executed, and so are anchors and aliases
(a few KB of them can expand to gigabytes), deep nesting and files over 1 MiB.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cae import plain_yaml
from cae.errors import SpaceError
from spaces.space import Param, Space

SHIPPED_DIR = Path(__file__).resolve().parent
_FILE_KEYS = ("description", "samples", "fixed", "params")
_DICT_KEYS = ("name", "path", *_FILE_KEYS)
_RANGE_KEYS = ("low", "high", "log", "step", "type")
_PARAM_KEYS = (*_RANGE_KEYS, "choices", "per_level", "increasing", "role")
# PyYAML follows YAML 1.1, where 3e-4 (no dot) is a string, not a float; YAML 1.2 and every reader expect a
# float, so such strings are converted after parsing.
_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def list_spaces() -> list[str]:
    """Names of the shipped spaces (the ``spaces/*.yaml`` files), sorted."""
    return sorted(path.stem for path in SHIPPED_DIR.glob("*.yaml"))


def load_space(name_or_path: str) -> Space:
    """Load a shipped space by name (``"quick"``) or a user's file by path (has a "/" or ends .yaml/.yml)."""
    path = _locate(name_or_path)
    document = _read_yaml(path)
    if document is None:
        raise SpaceError(
            f"{path}: the file is empty; a space needs params: and/or fixed: (see spaces/quick.yaml)"
        )
    if not isinstance(document, dict):
        raise SpaceError(
            f"{path}: expected a mapping with keys {', '.join(_FILE_KEYS)}, got a {type(document).__name__}"
        )
    _refuse_unknown(f"{path}: top-level", document, _FILE_KEYS)
    return space_from_dict({**document, "name": path.stem, "path": str(path)})


def space_from_dict(data: Mapping[str, Any]) -> Space:
    """Build a :class:`Space` from its dict form: a space file's content plus ``name`` (and ``path``).

    This is the inverse of :meth:`Space.to_dict`, so a study can rebuild the exact space it was run with.
    Errors are prefixed with the file (or the space name) they come from.
    """
    source = data.get("path") or f"space {data.get('name')!r}"
    try:
        _refuse_unknown("top-level", data, _DICT_KEYS)
        params = _section(
            data, "params", "parameter name to distribution, e.g. lr: {low: 1.0e-4, high: 1.0e-2}"
        )
        fixed = _section(data, "fixed", "setting to value, e.g. max_epochs: 10")
        options = {key: data[key] for key in ("description", "path", "samples") if key in data}
        return Space(
            name=data.get("name", ""),
            params=tuple(_param(name, entry) for name, entry in params.items()),
            fixed=fixed,
            **options,
        )
    except SpaceError as exc:
        raise SpaceError(f"{source}: {exc}") from None


def _locate(name_or_path: str) -> Path:
    shipped = ", ".join(list_spaces())
    if "/" in name_or_path or os.sep in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise SpaceError(
                f"space file {str(path)!r} does not exist or is not a file; give an existing .yaml file "
                f"or one of the shipped spaces: {shipped}"
            )
        return path.resolve()
    if name_or_path not in list_spaces():
        raise SpaceError(
            f"unknown space {name_or_path!r}; shipped spaces: {shipped} (or give a path to a .yaml file)"
        )
    return SHIPPED_DIR / f"{name_or_path}.yaml"


def _read_yaml(path: Path) -> Any:
    try:
        document = plain_yaml.load_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"{path}: cannot be read: {_one_line(exc)}") from None
    except yaml.constructor.ConstructorError as exc:
        raise SpaceError(
            f"{path}: {plain_yaml.describe(exc)}; only plain YAML (mappings, lists, strings, numbers, booleans) "
            "is allowed"
        ) from None
    except yaml.YAMLError as exc:
        raise SpaceError(f"{path}: invalid YAML: {plain_yaml.describe(exc)}") from None
    return _exponent_floats(document)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _exponent_floats(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _exponent_floats(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_exponent_floats(value) for value in node]
    if isinstance(node, str) and _EXPONENT_FLOAT.fullmatch(node):
        return float(node)
    return node


def _refuse_unknown(where: str, entry: Mapping[Any, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(str(key) for key in entry if key not in allowed)
    if unknown:
        raise SpaceError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def _section(data: Mapping[str, Any], key: str, form: str) -> Mapping[Any, Any]:
    section = data.get(key)
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise SpaceError(f"{key} must be a mapping of {form}; got {section!r}")
    return section


def _param(name: Any, entry: Any) -> Param:
    """One ``params`` entry: ``{choices: [...]}``, ``{per_level: [...]}`` or ``{low, high, log, step}``."""
    if not isinstance(entry, Mapping):
        raise SpaceError(
            f"parameter {name!r} must be a mapping like {{choices: [3, 5]}} or {{low: 32, high: 256}}, "
            f"got {entry!r}"
        )
    _refuse_unknown(f"parameter {name!r}", entry, _PARAM_KEYS)
    # What a space searches is, unless it says otherwise, what it compares.
    role = entry.get("role", "scientific")
    for form in ("per_level", "choices"):
        if form in entry:
            mixed = sorted(key for key in (*_RANGE_KEYS, "choices") if key in entry and key != form)
            if mixed:
                raise SpaceError(f"parameter {name!r}: {form} cannot be combined with {', '.join(mixed)}")
            return Param(
                name,
                "categorical",
                choices=entry[form],
                role=role,
                per_level=form == "per_level",
                increasing=entry.get("increasing", False),
            )
    if "low" not in entry or "high" not in entry:
        raise SpaceError(
            f"parameter {name!r}: give choices: [...], or both low: and high: (with log: or step:)"
        )
    integral = all(isinstance(entry[k], int) and not isinstance(entry[k], bool) for k in ("low", "high"))
    kind = entry.get("type", "int" if integral else "float")
    if kind not in ("int", "float"):
        raise SpaceError(f"parameter {name!r}: type {kind!r} is unknown; allowed: int, float")
    return Param(
        name,
        kind,
        low=entry["low"],
        high=entry["high"],
        log=entry.get("log", False),
        step=entry.get("step"),
        role=role,
    )
