"""Headless Chromium for the page tests (the HTML report, the dashboard): Debian's ``chromium``, which
``.ci/run`` installs when missing; without one the tests that need it are skipped."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


def find_browser() -> str | None:
    """The first browser binary on PATH, or None."""
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the browser headless with a fresh profile folder (no network beyond what the page asks for)."""
    return subprocess.run(
        [binary, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=180
    )
