"""Rendering: the same blocks as terminal text, Markdown and self-contained HTML, with data escaped."""

from __future__ import annotations

import pandas as pd

from analysis import render
from analysis.document import Bullets, Heading, Image, Table, Text, pivot_cells

EVIL = "<script>alert('x')</script>"
BLOCKS = [
    Heading(f"Study {EVIL}", 1),
    Text("engine: ray | sampler: tpe"),
    Bullets([f"activation {EVIL} is best"]),
    Table(pd.DataFrame({"rank": [1, 2], "activation": [EVIL, "relu"], "val_mse": [0.0123456, 0.02]}), "Top"),
    Image("plot.png", "A plot"),
]


def test_html_escapes_data_and_embeds_images() -> None:
    page = render.to_html(f"report {EVIL}", BLOCKS, {"plot.png": b"\x89PNG fake"})
    assert EVIL not in page and "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert 'src="data:image/png;base64,iVBORyBmYWtl"' in page
    assert "http" not in page  # nothing to fetch: the page opens offline
    assert "<td>0.01235</td>" in page and "<th>val MSE</th>" in page


def test_markdown_escapes_html_and_pipes() -> None:
    text = render.markdown("report", BLOCKS)
    assert EVIL not in text
    assert "engine: ray \\| sampler: tpe" in text
    assert "**Top (MSE on pixel values in [-1, 1], 4x the same error on [0, 1])**" in text
    assert "| rank | activation | val MSE |" in text
    assert "| 1 | &lt;script>alert('x')&lt;/script> | 0.01235 |" in text  # no tag can open
    assert render.markdown("t", [Text("needs >180 epochs & more")]).splitlines()[2] == "needs >180 epochs &amp; more"
    assert "![A plot](plot.png)" in text


def test_terminal_shows_tables_aligned() -> None:
    text = render.terminal(BLOCKS)
    assert "Top (MSE on pixel values in [-1, 1], 4x the same error on [0, 1]):\nrank" in text
    assert "   1 <script>alert(" in text  # a terminal shows text as it is
    assert "[A plot: plot.png]" in text


def test_every_table_with_an_mse_says_its_pixel_range() -> None:
    mse = pd.DataFrame({"val_mse mean": [0.01]})
    assert Table(mse).title == "MSE on pixel values in [-1, 1], 4x the same error on [0, 1]"
    assert Table(mse, "By kernel").title == "By kernel (MSE on pixel values in [-1, 1], 4x the same error on [0, 1])"
    assert Table(pd.DataFrame({"kernel_size=3": ["0.01 (2)"]}), "Mean val MSE (n)").title.endswith("[0, 1])")
    assert Table(pd.DataFrame({"params": [1]}), "Sizes").title == "Sizes"  # no MSE: nothing to say
    page = render.to_html("t", [Table(mse, "By kernel")], {})
    assert "<caption>By kernel (MSE on pixel values in [-1, 1], 4x the same error on [0, 1])</caption>" in page


def test_pivot_cells_join_means_and_counts() -> None:
    mean = pd.DataFrame({"filters": ["8-16", "16-32"], "kernel_size=3": [0.01, float("nan")]})
    count = pd.DataFrame({"filters": ["8-16", "16-32"], "kernel_size=3": [2, 0]})
    assert pivot_cells(mean, count, "val_mse")["kernel_size=3"].tolist() == ["0.01 (2)", ""]
    assert render.header("kernel_size=3") == "kernel size=3" and render.header("val_mse mean") == "val MSE mean"


def test_markdown_shows_links_images_and_code_in_data_as_text() -> None:
    """A value from the folder written into report.md renders (CommonMark, as GitHub does) as the same text:
    no link, image, code span, emphasis, heading or list opens, while readable values stay as they are."""
    from markdown_it import MarkdownIt

    values = ["[click](https://evil.example/x)", "![p](https://evil.example/p.png)", "[ref]: https://evil.example",
              "<https://evil.example>", "`code` *bold* _it_", "# heading", "1. item", "> quote", "- item"]
    text = render.markdown("t", [*(Text(v) for v in values), Bullets(values),
                                 Table(pd.DataFrame({"activation": values}), "T")])
    page = MarkdownIt("commonmark").enable("table").render(text)
    for tag in ("<a ", "<img", "<code", "<em", "<strong>click", "<h2", "<ol", "<blockquote"):
        assert tag not in page, tag
    assert page.count("<li>") == len(values) and "[click](https://evil.example/x)" in page  # the text, shown
    readable = "val_mse 0.0123 in [-1, 1] (n = 3): needs >180 epochs, 2x faster"
    assert render.markdown("t", [Text(readable)]).splitlines()[2] == readable
    assert "https\\://evil.example" in text and "www\\.evil" in render.markdown("t", [Text("www.evil.example")])
