"""The one YAML reader of the suite: plain data only, and never more costly than the text it reads.

``yaml.safe_load`` already refuses tags that construct Python objects, but it still follows anchors and
aliases, so a 1 KB "billion laughs" file (nine levels of lists that each repeat the previous one ten
times) expands to 10^9 strings and gigabytes of memory, and a recursive alias (``&d {x: *d}``) builds a
self-containing dict that breaks every reader after it. caesweep's YAML files (search spaces) have no use
for aliases, so :class:`PlainLoader` refuses them outright, as it does nesting deeper than
:data:`MAX_DEPTH` and files larger than :data:`MAX_BYTES`. It also refuses the YAML types that are not
plain data (``!!binary``, ``!!set``, ``!!omap``, ``!!pairs``), reads dates as the strings they are written
as, and turns every value that cannot be converted (an integer of 5,000 digits, ``!!bool maybe``, a
13th month) into a :class:`yaml.YAMLError` with its line, instead of the ``ValueError`` or
``AttributeError`` PyYAML would raise. Every caesweep reader of YAML goes through :func:`load`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import Node

# A space file is a few KB; 1 MiB leaves room for long descriptions and bounds what parsing can cost.
MAX_BYTES = 1 << 20
# Spaces nest four levels (params -> lr -> choices -> value); 32 is generous and keeps the recursive
# composer far from Python's recursion limit.
MAX_DEPTH = 32

_TOO_LARGE = f"larger than {MAX_BYTES:,} bytes, and a space file is a few KB"


class PlainLoader(yaml.SafeLoader):
    """A ``SafeLoader`` without aliases, deep nesting or non-plain types (see the module docstring)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            raise ComposerError(
                None, None, f"alias *{event.anchor} is not allowed: caesweep refuses anchors and aliases in YAML "
                "files; write the value out", event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(
                    None, None, f"nesting deeper than {MAX_DEPTH} levels is not allowed",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _checked(construct: Callable[..., Any], what: str) -> Callable[[PlainLoader, Node], Any]:
    """``construct``, with the errors PyYAML leaks for an unconvertible scalar made a located YAML error."""

    def checked(loader: PlainLoader, node: Node) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError) as exc:
            raise yaml.MarkedYAMLError(
                None, None, f"{_short(node.value)} cannot be read as {what} ({_short(exc)})", node.start_mark
            ) from None

    return checked


def _short(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, so one bad value cannot flood the error line."""
    text = repr(value) if not isinstance(value, Exception) else str(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _refused(loader: PlainLoader, node: Node) -> Any:
    raise ConstructorError(
        None, None, f"tag {node.tag} is not allowed", node.start_mark
    )


def _as_string(loader: PlainLoader, node: Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_BASE = yaml.constructor.SafeConstructor
for _tag, _construct, _what in (
    ("int", _BASE.construct_yaml_int, "an integer"),
    ("float", _BASE.construct_yaml_float, "a number"),
    ("bool", _BASE.construct_yaml_bool, "a boolean"),
):
    PlainLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _checked(_construct, _what))
PlainLoader.add_constructor("tag:yaml.org,2002:timestamp", _as_string)
for _tag in ("binary", "set", "omap", "pairs"):
    PlainLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refused)


def load_file(path: Path) -> Any:
    """Read and parse a YAML file, reading no more than :data:`MAX_BYTES` + 1 bytes of it.

    Raises:
        OSError, UnicodeDecodeError: the file cannot be read as UTF-8 text.
        yaml.YAMLError: see :func:`load`.
    """
    with path.open("rb") as file:
        raw = file.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise yaml.YAMLError(_TOO_LARGE)
    return load(raw.decode("utf-8"))


def load(text: str) -> Any:
    """Parse ``text`` as plain YAML.

    Raises:
        yaml.YAMLError: the text is larger than :data:`MAX_BYTES`, is not YAML, or uses an alias, deep
            nesting, a non-plain tag or a value that cannot be converted. The message names the line.
    """
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise yaml.YAMLError(_TOO_LARGE)
    loader = PlainLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def describe(exc: yaml.YAMLError) -> str:
    """One line for a YAML error: what is wrong and where, without PyYAML's multi-line snippet."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return " ".join(str(exc).split())
    parts = [part for part in (exc.context, exc.problem) if part]
    mark = exc.problem_mark or exc.context_mark
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return " ".join(" ".join(parts).split()) + where
