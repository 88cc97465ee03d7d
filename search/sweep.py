"""A :class:`Sweep`: everything a study needs, checked (:mod:`search.plan` builds it), for an engine to run.

A sweep's :class:`Trainable` is what each trial runs: caesweep's training by default, or another function that
reports the same records (:mod:`results.reports`), e.g. a tabular benchmark's replay; it goes with the sweep to
``run``, ``resume`` and ``confirm`` alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import results
from cae.data import Dataset
from search.controls import WarmStart
from search.options import SweepOptions
from search.samplers import make_sampler
from search.trial import TrialSettings, run_trial
from spaces import Space


@dataclass(frozen=True)
class Trainable:
    """What each Ray trial runs (``fn(config, data, settings)``), and the Ray Tune callbacks its trials need in
    the driver (a benchmark's simulated clock, say)."""

    fn: Callable[..., None] = run_trial
    driver_callbacks: Sequence[Any] = field(default_factory=tuple)

    @classmethod
    def of(cls, value: Trainable | Callable[..., None]) -> Trainable:
        """A trainable as given: a :class:`Trainable` as it is, a plain function with no driver callbacks."""
        return value if isinstance(value, Trainable) else cls(value)


@dataclass(frozen=True)
class Sweep:
    """A study ready to run: options, the resolved space, the data, trial settings, storage and target."""

    opts: SweepOptions
    space: Space
    data: Dataset | Mapping[int, Dataset]  # a confirm run over several splits: each split seed's dataset
    settings: TrialSettings
    paths: results.StudyPaths
    storage_url: str | None  # the Optuna storage (None: the keras-tuner engine, which keeps its own)
    samples: int  # the study's target number of trials
    max_epochs: int
    grid: Mapping[str, list[Any]] | None = None  # the finite space, when the sampler is ``grid``
    # What each Ray trial runs: caesweep's training (the default), or e.g. a tabular benchmark's replay; every
    # trainable reports the records of results.reports (each epoch, then a final or a failed report).
    trainable: Trainable = field(default_factory=Trainable)
    enqueued: tuple[Mapping[str, Any], ...] = ()  # configurations to train first (--enqueue, checked)
    warm: WarmStart | None = None  # earlier studies' finished trials for the sampler (--warm-start)
    # The time.monotonic() at which the study's time budget is spent, in this process (search.ray_engine.run
    # sets it from the budget and the time earlier runs spent): no new trial is proposed after it.
    deadline: float | None = None
    verbose: bool = False  # Ray Tune's own per-trial tables on the terminal, besides the progress view

    @property
    def ray_storage(self) -> str:
        """Where Ray writes its experiments: the study's ray/ folder, or the same under a URI root."""
        if results.is_uri(self.opts.root):
            return f"{str(self.opts.root).rstrip('/')}/{self.paths.name}/ray"
        return str(self.paths.ray_dir.resolve())

    @property
    def ray_filesystem(self) -> Any:
        """The filesystem Ray writes ``ray_storage`` through: for a folder, one where every file appears whole
        (a driver killed while Ray copies its state leaves the previous state, see ``search.ray_files``);
        for a URI root, the one pyarrow resolves."""
        if results.is_uri(self.opts.root):
            return None
        from search.ray_files import atomic_local

        return atomic_local()

    def sampler(self, run: int = 1) -> Any:
        """A fresh Optuna sampler for the study's run number ``run``: seeded from the study's seed and the run,
        so an extension does not replay the proposals of the runs before it."""
        seed = self.opts.seed + 1_000_003 * (run - 1)
        return make_sampler(self.opts.sampler, seed, grid=dict(self.grid) if self.grid else None,
                            startup_trials=self.opts.startup_trials)
