"""Property-based fuzzing of every reader of user input, a small seeded run (``make test``).

The property (see :mod:`tests.fuzz.harness`): whatever the input, the user sees exit 0 or caesweep's
one-line error with exit 2, never a traceback, a hang, or a write outside the folders the command owns.
``python -m benchmarks.fuzz --examples N`` runs the same readers for many more inputs.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.readers import READERS

# Seeded (derandomize) so a run is the same on every machine; the slower readers draw fewer inputs.
EXAMPLES = {"study-report": 25, "report-options": 10, "hostile-report": 20, "hostile-load": 30, "hostile-list": 30,
            "hostile-resume": 30}
DEFAULT_EXAMPLES = 60


@pytest.mark.parametrize("name", READERS)
def test_reader_holds_the_property(name: str) -> None:
    reader = READERS[name]
    run = settings(
        max_examples=EXAMPLES.get(name, DEFAULT_EXAMPLES), derandomize=True, deadline=None, database=None,
        suppress_health_check=list(HealthCheck), print_blob=True,
    )(given(reader.inputs)(reader.case))
    run()
