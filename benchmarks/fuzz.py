"""``python -m benchmarks.fuzz``: the long fuzzing run of every reader of user input.

::

    python -m benchmarks.fuzz [--examples N] [--seed S] [--reader NAME ...]

Runs each reader of ``tests/fuzz/readers.py`` (space files, study folders as read by ``load_study``,
``search list`` and the report, and the options of ``cae.train``, ``analysis.report`` and ``benchmarks``)
for ``N`` generated inputs, and prints per reader how many inputs it tried, how long it took, and the first
input that broke the property (shrunk to its simplest form), if any. Exit code 1 when something was found.
The readers live with the tests, so this runs from a checkout with the test extra installed
(``pip install -e '.[test]'``); ``make test`` runs the same readers on a few inputs each.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cae.cli import ArgumentParser, run
from cae.errors import BenchmarkError

if TYPE_CHECKING:
    from tests.fuzz.readers import Reader

DEFAULT_EXAMPLES = 500


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES, help="inputs per reader")
    parser.add_argument("--seed", type=int, default=0, help="the generator's seed (same seed, same inputs)")
    parser.add_argument("--reader", action="append", help="fuzz only this reader (repeatable)")
    args = parser.parse_args(argv)
    if args.examples < 1:
        raise BenchmarkError(f"--examples {args.examples} must be at least 1")
    readers = _readers()
    unknown = sorted(set(args.reader or ()) - set(readers))
    if unknown:
        raise BenchmarkError(f"unknown reader(s) {', '.join(unknown)}; choose from {', '.join(readers)}")
    found = 0
    total = 0
    print(f"{'reader':<18} {'inputs':>7} {'seconds':>8}  result")
    for name in args.reader or readers:
        tried, seconds, failure = _fuzz(readers[name], args.examples, args.seed)
        total += tried
        found += failure is not None
        print(f"{name:<18} {tried:>7} {seconds:>8.1f}  {failure or 'property held'}", flush=True)
    print(f"{total} inputs in all; {found} reader(s) broke the property")
    return 1 if found else 0


def _readers() -> dict[str, Reader]:
    checkout = Path(__file__).resolve().parents[1]
    if not (checkout / "tests" / "fuzz" / "readers.py").is_file():
        raise BenchmarkError("the fuzz readers live in tests/fuzz/: run this from a caesweep checkout")
    sys.path.insert(0, str(checkout))
    try:
        from tests.fuzz.readers import READERS
    except ModuleNotFoundError as exc:
        raise BenchmarkError(f"{exc.name} is missing; install the test extra: pip install -e '.[test]'") from None
    return READERS


def _fuzz(reader: Reader, examples: int, seed: int) -> tuple[int, float, str | None]:
    """Run ``reader`` on ``examples`` inputs: (inputs tried, seconds, the shrunk failure or None)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as seeded

    tried = 0

    def counted(value: object) -> None:
        nonlocal tried
        tried += 1
        reader.case(value)

    test = seeded(seed)(settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck),
        print_blob=False,
    )(given(reader.inputs)(counted)))
    start = time.perf_counter()
    try:
        test()
    except Exception as exc:  # the property's AssertionError, or Hypothesis's report of a flaky one
        return tried, time.perf_counter() - start, (str(exc).splitlines() or [type(exc).__name__])[0][:400]
    return tried, time.perf_counter() - start, None


if __name__ == "__main__":
    raise SystemExit(run(main))
