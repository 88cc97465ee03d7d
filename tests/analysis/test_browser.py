"""The HTML report in a real headless browser: every embedded image loads, and a screenshot can be taken.

Needs Debian's ``chromium`` (``.ci/run`` installs it when missing); without one the test is skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from tests.analysis.browser import chromium
from tests.analysis.built_studies import Ran

# Appended to a copy of the report: after the load event, mark <body> with how many images decoded.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  document.body.dataset.images = images.length;
  document.body.dataset.loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
});
</script>"""


def test_every_embedded_image_loads_in_a_browser(browser: str, realistic_report: Ran, tmp_path: Path) -> None:
    page = (realistic_report.folder / "report.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    result = chromium(browser, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    body = re.search(r"<body[^>]*>", result.stdout)
    assert body, f"no DOM dumped (exit {result.returncode}): {result.stderr[-2000:]}"
    images = re.search(r'data-images="(\d+)"', body.group(0))
    loaded = re.search(r'data-loaded="(\d+)"', body.group(0))
    assert images and loaded, body.group(0)
    assert int(images.group(1)) == int(loaded.group(1)) == len(list(realistic_report.folder.glob("*.png"))) == 9


def test_screenshot_of_the_report(browser: str, realistic_report: Ran, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    report = realistic_report.folder / "report.html"
    result = chromium(browser, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri())
    assert shot.is_file(), f"no screenshot (exit {result.returncode}): {result.stderr[-2000:]}"
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 10  # text and tables were drawn, not a blank page
