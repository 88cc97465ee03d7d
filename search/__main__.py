from cae.cli import run
from search.cli import main

raise SystemExit(run(main))
