"""``caesweep COMMAND ...``: every command-line tool of caesweep under one name, with the same options as its
``python -m`` form (which stays): ``caesweep run ...`` is ``python -m search run ...``, ``caesweep report ...``
is ``python -m analysis.report ...``, and so on. Each command's module is imported only when it is asked for.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from cae.cli import EXIT_USER, run

# command -> (module whose main(argv) runs it, whether the command's own name is passed on as argv[0])
COMMANDS: dict[str, tuple[str, bool, str]] = {
    "run": ("search.cli", True, "start a study (python -m search run)"),
    "resume": ("search.cli", True, "continue or extend a study (python -m search resume)"),
    "confirm": ("search.cli", True, "re-train the best with new seeds or splits (python -m search confirm)"),
    "list": ("search.cli", True, "every study under a root (python -m search list)"),
    "export": ("search.cli", True, "a study's model for use without caesweep (python -m search export)"),
    "report": ("analysis.report", False, "leaderboard, tables, findings, plots (python -m analysis.report)"),
    "dashboard": ("analysis.dashboard", False, "optuna-dashboard on a study (python -m analysis.dashboard)"),
    "train": ("cae.train", False, "train and score one model, no Ray (python -m cae.train)"),
    "data": ("cae.data", False, "what a data split holds (python -m cae.data describe)"),
    "apply": ("cae.apply", False, "run a model on your own images (python -m cae.apply)"),
    "bench": ("benchmarks.cli", False, "the benchmarks (python -m benchmarks)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, _, text) in COMMANDS.items()]
    return "usage: caesweep COMMAND [options]  (caesweep COMMAND --help for a command's options)\n" + "\n".join(lines)


def entry(command: str) -> Callable[[Sequence[str] | None], int]:
    """The ``main(argv)`` of ``command``'s module (imported now)."""
    module, _, _ = COMMANDS[command]
    return importlib.import_module(module).main  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else EXIT_USER
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"error: caesweep has no command {command!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return EXIT_USER
    _, keeps_name, _ = COMMANDS[command]
    return run(entry(command), [command, *rest] if keeps_name else rest)


if __name__ == "__main__":
    raise SystemExit(main())
