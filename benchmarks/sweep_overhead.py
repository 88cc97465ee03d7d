"""Per-trial overhead of a sweep: (wall time - the trials' own training time) / trials, on CPU.

Runs a real sweep (Ray Tune + Optuna TPE, no early stopping, one trial at a time so training times add up
to wall time) of a tiny space on the embedded data, in a fresh results root, and prints::

    wall time, summed training time, overhead per trial (target < 2 s), the driver's start-up share

The overhead includes Ray's start, TensorFlow's import in each worker (reused across trials on CPU), model
building, the per-epoch validation pass, checkpoint and report, test evaluation and the bookkeeping of the driver.
Its steady part is timed on the trials' own clocks: from one trial's final report to the next one's, less the next
one's training (the first trial's one-time costs, the worker's start and TensorFlow's import among them, are
start-up). Ray's result timestamps are whole seconds, so they only date the first epoch.

    python -m benchmarks.sweep_overhead [--trials 8] [--epochs 2] [--limit 512] [--out FILE]

``--mlflow URI`` (or ``--mlflow local``: a loopback ``mlflow server`` with a SQLite backend, started here) measures
what MLflow logging adds: ``--rounds`` pairs of sweeps, without and with ``--mlflow``, alternating which goes
first, and prints the medians of each side's overhead per trial and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

SPACE = """\
description: overhead benchmark (small models, so the overhead is visible)
samples: 8
fixed: {task: reconstruct, data: embedded, image_size: 32, batch_size: 64, kernel_size: 3}
params:
  filters: {choices: ["16-32", "16-32-64"], role: scientific}
  latent_dim: {choices: [32, 64, 128], role: scientific}
  lr: {low: 3.0e-4, high: 3.0e-3, log: true, role: nuisance}
"""
REPO = Path(__file__).resolve().parents[1]


def space_text(precision: str | None = None) -> str:
    """The sweep's space file: :data:`SPACE`, with the trainings' ``precision`` fixed when given."""
    if precision is None:
        return SPACE
    import yaml

    from cae import plain_yaml

    document = plain_yaml.load(SPACE)
    document["fixed"] = {**document["fixed"], "precision": precision}
    return yaml.safe_dump(document, sort_keys=False)
TARGET_SECONDS = 2.0
PARTS = ("setup", "validation", "checkpoint", "eval")  # the trial's own cost outside training, as it reports it


def measure(
    trials: int = 8, epochs: int = 2, limit: int = 512, precision: str | None = None, mlflow: str | None = None
) -> dict[str, Any]:
    """Run the sweep in a subprocess (as a user would) and return the timings (``precision``: the trainings';
    ``mlflow``: the tracking server its trials log to, else none, whatever MLFLOW_TRACKING_URI says)."""
    with tempfile.TemporaryDirectory(prefix="caesweep-overhead-") as tmp:
        space = Path(tmp) / "overhead.yaml"
        space.write_text(space_text(precision))
        cmd = [
            sys.executable, "-m", "search", "run", "--space", str(space), "--study", "overhead", "--root", tmp,
            "--samples", str(trials), "--max-epochs", str(epochs), "--limit", str(limit), "--scheduler", "none",
            "--concurrency", "1", "--cpus-per-trial", "2",
            *(["--mlflow", mlflow] if mlflow else ["--no-mlflow"]),
        ]
        started, t0 = time.perf_counter(), time.time()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        wall, t1 = time.perf_counter() - started, time.time()
        if proc.returncode != 0:
            raise RuntimeError(f"the sweep failed:\n{proc.stderr[-2000:]}")
        table = pd.read_csv(Path(tmp) / "overhead" / "trials.csv")
        runs = _result_lines(Path(tmp) / "overhead")
    finals = sorted((lines[-1] for lines in runs if lines[-1].get("finished_at")), key=lambda f: f["finished_at"])
    first = min(lines[0]["timestamp"] - lines[0]["seconds"] for lines in runs)  # Ray's timestamps: whole seconds
    if len(finals) != len(table) or len(finals) < 2:
        raise RuntimeError(f"the sweep ended {len(finals)} of {len(table)} trials with a final report (at least 2 "
                           "are needed to time the steady state)")
    train = float(table["train_seconds"].sum())
    # Steady state, on the trials' own clocks: the time from one trial's final report to the next one's, less the
    # next one's training. It holds everything a trial costs outside training (the previous trial's last
    # checkpoint, Ray's and Optuna's turn, setup, the validation passes, checkpoints, test scoring) and none of the
    # one-time costs of the first trial (the worker's TensorFlow import, its first trace, the baselines and the
    # bootstrap a worker computes once), which are start-up.
    ends = [final["finished_at"] for final in finals]
    steady_each = [ends[i] - ends[i - 1] - finals[i]["train_seconds"] for i in range(1, len(finals))]
    steady = statistics.fmean(steady_each)
    later = finals[1:]
    in_trial = {f"{part}_seconds_per_trial": statistics.fmean(float(f.get(f"{part}_seconds") or 0.0) for f in later)
                for part in PARTS}
    startup = ends[0] - t0 - finals[0]["train_seconds"]  # process start to the first trial's end, less its training
    teardown = t1 - ends[-1]  # the last trial's end to the process's exit (its checkpoint, tables, Ray's shutdown)
    return {
        "startup_seconds": startup,
        "teardown_seconds": teardown,
        "first_epoch_after_seconds": first - t0,  # process start to the first trained epoch (imports, Ray, data)
        "steady_overhead_per_trial_seconds": steady,
        "steady_overhead_median_seconds": statistics.median(steady_each),
        **in_trial,  # the parts of the steady overhead spent inside the trial
        # The rest: Ray's, Optuna's and the driver's turn between trials (0.05-0.07 s by a trial worker's clock marks,
        # AMD EPYC), and the trial's bookkeeping outside its parts (TensorBoard's events, fit's start and end).
        "between_trials_seconds_per_trial": steady - sum(in_trial.values()),
        "trials": int(len(table)),
        "epochs": epochs,
        "images_per_split": limit,
        "wall_seconds": wall,
        "train_seconds": train,
        "overhead_per_trial_seconds": (wall - train) / len(table),
        "target_seconds": TARGET_SECONDS,
        "trials_to_meet_target": trials_to_meet(startup + teardown, steady),
    }


def trials_to_meet(fixed: float, steady: float, target: float | None = None) -> int | None:
    """The fewest trials for which (fixed + trials x steady) / trials < target; None when steady alone misses it."""
    target = TARGET_SECONDS if target is None else target
    if steady >= target:
        return None
    return int(math.floor(fixed / (target - steady))) + 1


def _result_lines(study: Path) -> list[list[dict[str, Any]]]:
    """Each trial's reports, from Ray's result files (trials with none left out)."""
    runs = []
    for path in study.glob("ray/run-*/trial_*/result.json"):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if lines:
            runs.append(lines)
    return runs


@contextlib.contextmanager
def loopback_mlflow(folder: Path, timeout: float = 120.0) -> Iterator[str]:
    """A real ``mlflow server`` on a free loopback port, its runs in SQLite and its artifacts under ``folder``;
    its URI once it answers; stopped on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with (folder / "mlflow-server.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
             "--artifacts-destination", str(folder / "mlflow-artifacts"), "--host", "127.0.0.1", "--port",
             str(port), "--workers", "1"],
            cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            # Without the server's job runner (GenAI jobs: seven more processes), which no run here needs.
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
        uri = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + timeout
            while not _answers(f"{uri}/health"):
                if proc.poll() is not None or time.time() > deadline:
                    said = (folder / "mlflow-server.log").read_text()[-2000:]
                    raise RuntimeError(f"mlflow server did not start:\n{said}")
                time.sleep(0.5)
            yield uri
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def compare_mlflow(uri: str, rounds: int, trials: int, epochs: int, limit: int) -> dict[str, Any]:
    """``rounds`` pairs of sweeps without and with MLflow logging to ``uri`` (which goes first alternates, so a
    machine that slows down over the runs burdens both sides alike); the medians and their ratio."""
    sides: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    for round_ in range(rounds):
        for side in (("without", "with") if round_ % 2 == 0 else ("with", "without")):
            sides[side].append(measure(trials, epochs, limit, mlflow=uri if side == "with" else None))
            print(f"round {round_ + 1} {side}: overhead {sides[side][-1]['overhead_per_trial_seconds']:.2f} s per "
                  f"trial (steady {sides[side][-1]['steady_overhead_per_trial_seconds']:.2f} s)", flush=True)
    keys = ("overhead_per_trial_seconds", "steady_overhead_per_trial_seconds", "startup_seconds",
            "teardown_seconds", "wall_seconds", "train_seconds")
    medians = {side: {k: statistics.median(r[k] for r in runs) for k in keys} for side, runs in sides.items()}
    return {
        "rounds": rounds, "trials": trials, "epochs": epochs, "images_per_split": limit, "medians": medians,
        "ratio_overhead_per_trial": medians["with"]["overhead_per_trial_seconds"]
        / medians["without"]["overhead_per_trial_seconds"],
        "ratio_steady_overhead_per_trial": medians["with"]["steady_overhead_per_trial_seconds"]
        / medians["without"]["steady_overhead_per_trial_seconds"],
        "runs": sides,
    }


def logging_cost(uri: str, trials: int = 10, epochs: int = 2, model_bytes: int = 300_000,
                 epoch_seconds: float = 0.5) -> dict[str, Any]:
    """What MLflow logging costs, in parts: importing MLflow in a fresh process (once per driver and per trial
    worker), and what one trial waits for in its calls (find or create its run, ``epochs`` epochs, the end with a
    model of ``model_bytes``) from this process against ``uri``, each epoch ``epoch_seconds`` of idle "training"
    apart (the run's thread sends meanwhile): medians of ``trials`` trials, and of the calls' whole time."""
    from search.mlflow_log import MlflowTarget, open_experiment, trial_run

    def import_seconds(statement: str) -> float:  # in a fresh process that has a trial worker's modules loaded
        code = (f"import time, ray.tune, keras, search.trial, cae.training; t = time.perf_counter(); {statement}; "
                "print(time.perf_counter() - t)")
        runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
                for _ in range(3)]
        return statistics.median(float(run.stdout.split()[-1]) for run in runs)
    study = f"overhead-logging-{int(time.time())}"
    with tempfile.TemporaryDirectory(prefix="caesweep-mlflow-cost-") as tmp:
        model = Path(tmp) / "model.keras"
        model.write_bytes(os.urandom(model_bytes))
        started = time.perf_counter()
        bound = open_experiment(MlflowTarget(uri=uri, study=study), study)
        setup = time.perf_counter() - started
        history = [{"epoch": e, "loss": 0.1 / e, "mse": 0.1 / e, "val_loss": 0.2 / e, "val_mse": 0.2 / e,
                    "val_psnr": 10.0 + e, "val_ssim": 0.5, "seconds": 1.0} for e in range(1, epochs + 1)]
        final = {**history[-1], "epochs": epochs, "best_epoch": epochs, "test_mse": 0.2, "kept_val_mse": 0.2,
                 "params": 1000, "architecture": "16-32 k3 z32"}
        seconds, whole = [], []
        for number in range(trials):
            run = trial_run(bound, f"t{number:04d}", {"lr": 1e-3, "filters": "16-32"}, "16-32 k3 z32",
                            epochs=epochs)
            if run is None:
                raise RuntimeError("the experiment was not opened")
            waited, started = 0.0, time.perf_counter()
            run.start()  # as a trial does when it starts
            for epoch in range(1, epochs + 1):
                time.sleep(epoch_seconds)
                state = SimpleNamespace(epoch=epoch, progress=SimpleNamespace(history=history[:epoch]),
                                        model=SimpleNamespace(stop_training=False))
                entered = time.perf_counter()
                run(state)  # the epoch hook, then the wait before the report (no checkpoint saved in between here)
                run.flush()
                waited += time.perf_counter() - entered
            entered = time.perf_counter()
            run.finish(final, model, history=history)
            waited += time.perf_counter() - entered
            seconds.append(waited)
            whole.append(time.perf_counter() - started - epochs * epoch_seconds)
    return {"import_seconds": import_seconds("import search.mlflow_log"),  # what a trial imports to log
            "mlflow_client_import_seconds": import_seconds("from mlflow import MlflowClient"),  # what it would
            "first_call_seconds": setup,  # the experiment made
            "calls_per_trial_seconds": statistics.median(seconds),
            "calls_whole_seconds": statistics.median(whole),  # as if every call waited for its requests
            "trials": trials, "epochs": epochs, "epoch_seconds": epoch_seconds, "model_bytes": model_bytes}


def _print_comparison(result: dict[str, Any]) -> None:
    med = result["medians"]
    for name, key in (("overhead per trial", "overhead_per_trial_seconds"),
                      ("steady overhead per trial", "steady_overhead_per_trial_seconds"),
                      ("start-up", "startup_seconds"), ("tear-down", "teardown_seconds")):
        print(f"{name}: without MLflow {med['without'][key]:.2f} s, with {med['with'][key]:.2f} s "
              f"({med['with'][key] - med['without'][key]:+.2f} s)")
    print(f"medians of {result['rounds']} rounds x {result['trials']} trials x {result['epochs']} epochs: MLflow "
          f"logging multiplies the overhead per trial by {result['ratio_overhead_per_trial']:.3f}, the steady "
          f"overhead by {result['ratio_steady_overhead_per_trial']:.3f}")
    parts = result["parts"]
    share = parts["calls_per_trial_seconds"] / med["without"]["steady_overhead_per_trial_seconds"]
    print(f"in parts: importing caesweep's MLflow logging {parts['import_seconds']:.3f} s once per process (the "
          f"driver, each trial worker; MLflow's client would take {parts['mlflow_client_import_seconds']:.2f} s); "
          f"what one trial waits for in its calls ({parts['epochs']} epochs, its end, a "
          f"{parts['model_bytes'] // 1000} kB model) {parts['calls_per_trial_seconds']:.3f} s (the requests' whole "
          f"time {parts['calls_whole_seconds']:.3f} s), {share:.1%} of the steady overhead without MLflow")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--limit", type=int, default=512)
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/sweep_overhead.json"))
    p.add_argument("--mlflow", default=None, metavar="URI",
                   help="compare with MLflow logging to this tracking server (local: start one on loopback)")
    p.add_argument("--rounds", type=int, default=3, help="with --mlflow: pairs of sweeps, without and with")
    args = p.parse_args(argv)
    if args.mlflow:
        with tempfile.TemporaryDirectory(prefix="caesweep-mlflow-") as tmp, contextlib.ExitStack() as stack:
            uri = args.mlflow if args.mlflow != "local" else stack.enter_context(loopback_mlflow(Path(tmp)))
            compared = compare_mlflow(uri, args.rounds, args.trials, args.epochs, args.limit)
            compared["parts"] = logging_cost(uri, epochs=args.epochs)
        _print_comparison(compared)
        out = args.out.with_name(args.out.stem + "_mlflow.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(compared, indent=2))
        return 0
    result = measure(args.trials, args.epochs, args.limit)
    print(
        f"{result['trials']} trials x {result['epochs']} epochs: wall {result['wall_seconds']:.1f} s, "
        f"training {result['train_seconds']:.1f} s, overhead {result['overhead_per_trial_seconds']:.2f} s per trial "
        f"(target < {result['target_seconds']:.0f} s)\n"
        f"  of which fixed: start-up {result['startup_seconds']:.1f} s, tear-down {result['teardown_seconds']:.1f} s; "
        f"steady overhead per trial {result['steady_overhead_per_trial_seconds']:.2f} s = "
        + ", ".join(f"{part} {result[f'{part}_seconds_per_trial']:.2f} s" for part in PARTS)
        + f", between trials and the rest {result['between_trials_seconds_per_trial']:.2f} s\n"
        + (f"  below the target from {result['trials_to_meet_target']} trials per sweep on"
           if result["trials_to_meet_target"] else "  the steady overhead alone misses the target")
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
