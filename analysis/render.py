"""Render report blocks as terminal text, Markdown, or one self-contained HTML page.

Everything that comes from data (study names, parameter values, failure messages, sentences) is escaped
(:func:`html.escape` in HTML; in Markdown, :func:`_md`), so a value such as ``<script>`` or
``[click](https://...)`` shows as text, never as a tag, a link or an image. The HTML page embeds every image as
a ``data:`` URI and needs no network: it opens offline from a single file.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence

import pandas as pd

from analysis.document import Block, Bullets, Heading, Image, Table, Text
from analysis.metrics import fmt, label

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ccc; padding-bottom: .2rem; margin-top: 2.5rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid #e4e4e4; }
.table { overflow-x: auto; margin: .6rem 0 1.2rem; }
table { border-collapse: collapse; font-size: .86rem; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: .2rem 0; }
th, td { border: 1px solid #ddd; padding: .2rem .5rem; text-align: right; white-space: nowrap; }
th { background: #f3f5f7; white-space: normal; text-align: center; }
td.text { text-align: left; }
tr:nth-child(even) td { background: #fafbfc; }
figure { margin: 1rem 0 2rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9rem; }
nav { background: #f7f7f7; padding: .5rem 1rem; border-radius: 4px; font-size: .9rem; }
.muted { color: #666; }
"""


def header(column: str) -> str:
    """A column's readable header: ``"val_mse mean"`` -> ``"val MSE mean"``, ``"lr=0.01"`` -> ``"learning rate=0.01"``.
    """
    return " ".join("=".join(label(part) for part in word.split("=")) for word in column.split(" "))


def cells(table: Table) -> pd.DataFrame:
    """The table's values as formatted text, with readable headers."""
    frame = table.frame
    out = pd.DataFrame(
        {header(str(c)): [fmt(table.formats.get(str(c), str(c)), v) for v in frame[c]] for c in frame.columns},
        index=range(len(frame)),
    )
    return out


def terminal(blocks: Sequence[Block]) -> str:
    """Plain text for a terminal: headings, sentences, tables aligned by ``DataFrame.to_string``."""
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["", f"{'=' if block.level == 1 else '-'}" * 3 + f" {block.text}"]
        elif isinstance(block, Text):
            lines.append(block.text)
        elif isinstance(block, Bullets):
            lines += [f"- {item}" for item in block.items]
        elif isinstance(block, Table):
            if block.title:
                lines.append(block.title + ":")
            lines.append(cells(block).to_string(index=False) if len(block.frame) else "(none)")
        elif isinstance(block, Image):
            lines.append(f"[{block.caption}: {block.filename}]")
    return "\n".join(lines).strip() + "\n"


# What Markdown would read as syntax in data; each is escaped with a backslash (CommonMark's escape of ASCII
# punctuation): "\", "`", "*" and "~" (escapes, code, emphasis, strike-through); a "]" directly before "(", "["
# or ":" (so no link, image or link definition can close, and "[-1, 1]" stays readable); the ":" of "://" and the
# "." of "www." (GitHub links bare URLs); "_" at a word's edge (emphasis; "val_mse" stays as it is).
_MD_SYNTAX = re.compile(
    r"[\\`*~]|\](?=[(\[:])|(?<=[A-Za-z]):(?=//)|(?<=\b[wW]{3})\.|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])"
)
# What opens a block at a line's start: a heading, a quote, a list item ("-", "+", "1." or "1)"), a rule. The
# group is where the backslash goes.
_MD_BLOCK_START = re.compile(r"^[ \t]*(?:\d{1,9}()[.)]|()[#>+=-])")


def _md(text: object) -> str:
    """Data as Markdown text, shown as it is: never a tag, a link, an image or code. ``&`` and ``<`` become
    entities (no tag or autolink can open, and ``>180`` stays readable), ``|`` cannot end a table cell, line
    breaks become spaces, and the rest of the syntax is backslash-escaped (:data:`_MD_SYNTAX`)."""
    flat = re.sub(r"[\r\n]+", " ", str(text))
    escaped = _MD_SYNTAX.sub(lambda found: "\\" + found.group(0), flat)
    return escaped.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")


def _md_block(text: object) -> str:
    """:func:`_md` for a paragraph or a list item, which cannot open a heading, a quote, a list or a rule either."""
    escaped = _md(text)
    found = _MD_BLOCK_START.match(escaped)
    if found is None:
        return escaped
    at = found.start(1) if found.group(1) is not None else found.start(2)
    return escaped[:at] + "\\" + escaped[at:]


def markdown(title: str, blocks: Sequence[Block]) -> str:
    """GitHub-flavoured Markdown; images are linked by file name (the PNGs sit next to report.md)."""
    lines = [f"# {_md(title)}", ""]
    for block in blocks:
        if isinstance(block, Heading):
            lines += [f"{'#' * (block.level + 1)} {_md(block.text)}", ""]
        elif isinstance(block, Text):
            lines += [_md_block(block.text), ""]
        elif isinstance(block, Bullets):
            lines += [*(f"- {_md_block(item)}" for item in block.items), ""]
        elif isinstance(block, Table):
            if block.title:
                lines += [f"**{_md(block.title)}**", ""]
            lines += [*_md_table(cells(block)), ""]
        elif isinstance(block, Image):
            lines += [f"![{_md(block.caption)}]({block.filename})", ""]
    return "\n".join(lines)


def _md_table(frame: pd.DataFrame) -> list[str]:
    if frame.empty:
        return ["(none)"]
    rows = [[_md(c) for c in frame.columns], ["---"] * len(frame.columns)]
    rows += [[_md(v) for v in row] for row in frame.itertuples(index=False)]
    return ["| " + " | ".join(row) + " |" for row in rows]


def to_html(title: str, blocks: Sequence[Block], images: Mapping[str, bytes]) -> str:
    """One self-contained HTML page: inline CSS, every image embedded as base64 PNG."""
    body: list[str] = []
    toc: list[str] = []
    top = min((b.level for b in blocks if isinstance(b, Heading)), default=1)
    for index, block in enumerate(blocks):
        if isinstance(block, Heading):
            anchor = f"s{index}"
            body.append(f'<h{block.level} id="{anchor}">{html.escape(block.text)}</h{block.level}>')
            if block.level <= top + 1:  # the contents: studies and their sections, or the studies compared
                toc.append(f'<a href="#{anchor}">{html.escape(block.text)}</a>')
        elif isinstance(block, Text):
            body.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            body.append(_html_table(block))
        elif isinstance(block, Image):
            data = base64.b64encode(images[block.filename]).decode("ascii")
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block.caption)}" '
                f'data-file="{html.escape(block.filename)}"><figcaption>{html.escape(block.caption)}</figcaption>'
                "</figure>"
            )
    nav = f"<nav>{' &middot; '.join(toc)}</nav>" if len(toc) > 1 else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{nav}\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _html_table(table: Table) -> str:
    frame = cells(table)
    caption = f"<caption>{html.escape(table.title)}</caption>" if table.title else ""
    if frame.empty:
        return f'<div class="table"><table>{caption}<tr><td class="text muted">(none)</td></tr></table></div>'
    text_columns = {
        header(str(c)) for c in table.frame.columns
        if not pd.api.types.is_numeric_dtype(table.frame[c]) or pd.api.types.is_bool_dtype(table.frame[c])
    }
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        tds = "".join(
            f'<td class="text">{html.escape(v)}</td>' if c in text_columns else f"<td>{html.escape(v)}</td>"
            for c, v in zip(frame.columns, row, strict=True)
        )
        rows.append(f"<tr>{tds}</tr>")
    body = "".join(rows)
    return f'<div class="table"><table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
