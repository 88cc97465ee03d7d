"""Ctrl-C (SIGINT) and SIGTERM stop a sweep gracefully; a second signal stops it at once.

SIGTERM is what SLURM, Kubernetes and ``timeout`` send first, so it gets the same treatment as Ctrl-C. The
first signal is only *recorded*; the engines look at it where stopping is safe:

- the Ray engine forwards it to Ray Tune through Tune's own SIGUSR1 handler (from a Tune callback at the next
  step of Tune's loop), so Tune ends its loop the way it does for its own Ctrl-C: running trials keep their
  last epoch checkpoint and stay RUNNING in the saved experiment, which ``Tuner.restore`` continues;
- the keras-tuner engine stops before its next trial (the running trial finishes its epoch first);
- then the tables are written and ``study.json`` says ``interrupted``.

A second signal raises :class:`Interrupted` at once. The study is still resumable: Ray saves its experiment
state every second and every trial checkpoints every epoch, exactly as after a SIGKILL.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType, TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):  # noqa: N818  (a BaseException, like KeyboardInterrupt: nothing swallows it)
    """The second signal: stop now."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def interruption_in(exc: BaseException) -> Interrupted | None:
    """The :class:`Interrupted` behind ``exc``, if any. A second signal that arrives while Ray's C extension
    waits (``ray.wait`` checks signals there) leaves it as the cause of a ``SystemError``, not as itself."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, Interrupted):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + int(signum)


class Interruption:
    """Context manager that records the first SIGINT/SIGTERM and raises :class:`Interrupted` on the second."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._forwarded = False
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> Interruption:
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after the running epochs are saved (send it again to "
              "stop at once; the study stays resumable either way)", file=sys.stderr, flush=True)

    def tune_callback(self) -> Any:
        """A Ray Tune callback that hands a recorded signal to Tune's own stop mechanism (SIGUSR1)."""
        from ray import tune

        interruption = self

        class _StopOnSignal(tune.Callback):
            def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
                if interruption.requested and not interruption._forwarded:
                    interruption._forwarded = True
                    signal.raise_signal(signal.SIGUSR1)  # Tune's handler, installed for the length of fit()

        return _StopOnSignal()

    def run_started(self) -> None:
        """A new Tune run begins: a signal recorded earlier must be forwarded to it too."""
        self._forwarded = False
