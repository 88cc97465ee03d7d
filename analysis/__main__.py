"""``python -m analysis`` is ``python -m analysis.report``."""

from analysis.report import main
from cae.cli import run

raise SystemExit(run(main))
