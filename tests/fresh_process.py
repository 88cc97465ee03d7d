"""Run a snippet through caesweep's CLI plumbing in a fresh interpreter and measure what it cost.

Peak memory is the new process's own high-water mark (``VmHWM``): ``ru_maxrss`` would not do, as Linux
carries it over from the forking pytest process, which may hold gigabytes of TensorFlow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_MEASURE = """
import re, sys, time
from cae.cli import run

def _peak_mib():
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1)) // 1024

def main(argv):
{body}
    return 0

start = time.process_time()
rc = run(main)
print(time.process_time() - start, _peak_mib())
sys.exit(rc)
"""


@dataclass(frozen=True)
class Outcome:
    """What a fresh process did: exit code, stderr, CPU seconds of ``body`` and peak resident memory."""

    returncode: int
    stderr: str
    cpu_seconds: float
    peak_mib: int


def run_fresh(body: str) -> Outcome:
    """Run ``body`` (statements, e.g. ``load_space(path)``) as ``main`` under :func:`cae.cli.run`."""
    code = _MEASURE.replace("{body}", textwrap.indent(textwrap.dedent(body), "    "))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    cpu, peak = out.stdout.split()[-2:]
    return Outcome(out.returncode, out.stderr, float(cpu), int(peak))
