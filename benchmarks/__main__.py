"""``python -m benchmarks``: see :mod:`benchmarks.cli`."""

from benchmarks.cli import main
from cae.cli import run

raise SystemExit(run(main))
