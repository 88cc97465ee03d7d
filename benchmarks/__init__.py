"""Benchmarks: declared definitions, seed reproductions, an engine comparison on a tabular benchmark, the suite's
own performance.

::

    python -m benchmarks list
    python -m benchmarks run NAME [--data D] [--budget B] [--seeds K] [--root DIR] [...]
    python -m benchmarks build-table [--data embedded|cifar10] [--out benchmarks/data/embedded-16px.csv]

Modules, by role (the vizier layout, in a flat package):

- definitions: :class:`~benchmarks.definitions.BenchmarkDefinition` (dataset, tasks, space, metric, budget,
  seeds; validated when built), the registry and ``RunPlan``;
- problems: ``seed_architectures``, ``seed_colorization`` (real studies through ``search``), ``engines``
  (strategies replaying ``tabular``), ``overhead`` (with ``train_throughput`` and ``sweep_overhead``), and
  ``synthetic`` (Branin, a known-answer problem for the samplers);
- runners: ``sweeps`` (run, reuse or continue a benchmark's studies), ``tabular`` (build and replay a table),
  ``clock`` (simulated time for replays with several workers at once);
- analyzers: ``analyzers`` (best-so-far curves, compute to a target), ``evidence`` (seed noise and flattening
  behind the reproductions' verdicts), ``plots``; ``output`` writes
  ``<root>/benchmarks/NAME/result.json`` and ``table.md``.
"""
