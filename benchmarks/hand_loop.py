"""The peer of ``benchmarks.sweep_overhead``: the Ray Tune + OptunaSearch loop a user writes by hand.

The same work as the overhead sweep (its space: filters 16-32 or 16-32-64, latent 32/64/128, a log-uniform
learning rate; 8 trials x 2 epochs x 512 images per split of the embedded data at 32 px, one trial at a time,
2 CPUs each), written the way Ray's and Keras's tutorials write it: the data loaded once by the driver and handed
to the trials with ``tune.with_parameters``, ``OptunaSearch`` (TPE) proposing, each trial building the same CAE
(:func:`cae.models.build_model`: the model is not what is compared), ``model.fit`` with the val split as
validation data, a Keras callback calling ``tune.report`` each epoch, ``model.evaluate`` on the test split at
the end. It does less than a caesweep trial: no checkpoint (a killed trial starts over), no kept-epoch rule, no
baselines or bootstrap interval, no tables, no study folder, float32 only.

    python -m benchmarks.hand_loop run [--trials 8] [--epochs 2] [--limit 512]      # one run, its timings
    python -m benchmarks.hand_loop compare [--rounds 3] [--out FILE]               # side by side with caesweep

``compare`` alternates rounds of three processes, each timed from its start to its exit: the hand loop,
``python -m search run`` in float32, and ``python -m search run --precision auto`` (bfloat16 on a CPU with
AVX-512 BF16 or AMX), and prints the medians and the ratios of caesweep's wall time to the hand loop's (target:
at most 0.6 with ``auto``), with caesweep's steady overhead per trial in float32 (target: under 0.8 s).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
IMAGE_SIZE, BATCH = 32, 64
RATIO_TARGET, STEADY_TARGET = 0.6, 0.8


def _trainable(config: dict[str, Any], data: Any, epochs: int) -> None:
    """One trial, as a tutorial writes it."""
    import keras
    from ray import tune

    from cae.config import ModelConfig
    from cae.models import build_model

    model = build_model(ModelConfig(filters=tuple(int(f) for f in config["filters"].split("-")),
                                    latent_dim=int(config["latent_dim"])), IMAGE_SIZE, 3, 3)
    model.compile(optimizer=keras.optimizers.Adam(config["lr"]), loss="mse")

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch + 1 < epochs:  # the last epoch is reported with the test score below
                tune.report({"epoch": epoch + 1, "val_mse": float((logs or {})["val_loss"])})

    started = time.perf_counter()
    history = model.fit(data.train, data.train, batch_size=BATCH, epochs=epochs, validation_data=(data.val, data.val),
                        callbacks=[Report()], verbose=0)
    fit_seconds = time.perf_counter() - started
    test_mse = float(model.evaluate(data.test, data.test, batch_size=BATCH, verbose=0))
    tune.report({"epoch": epochs, "val_mse": float(history.history["val_loss"][-1]), "test_mse": test_mse,
                 "fit_seconds": fit_seconds})


def run(trials: int, epochs: int, limit: int, storage: Path, cpus: int = 2) -> dict[str, Any]:
    """The hand-written sweep: Ray Tune, OptunaSearch (TPE), one trial at a time (in a private Ray it starts, or
    in the one this process already runs)."""
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from cae.data import load_dataset

    data = load_dataset("embedded", image_size=IMAGE_SIZE, seed=0, limit=limit)
    # Ray Tune installs a SIGINT handler of its own for the fit (a first Ctrl-C stops the experiment gracefully)
    # and leaves it installed; put the caller's back after, so a process that goes on (a test) keeps its Ctrl-C.
    previous = signal.getsignal(signal.SIGINT)
    own = not ray.is_initialized()
    if own:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trainable, data=data, epochs=epochs), {"cpu": cpus}),
            param_space={"filters": tune.choice(["16-32", "16-32-64"]), "latent_dim": tune.choice([32, 64, 128]),
                         "lr": tune.loguniform(3e-4, 3e-3)},
            tune_config=tune.TuneConfig(search_alg=OptunaSearch(metric="val_mse", mode="min", seed=0),
                                        num_samples=trials, max_concurrent_trials=1),
            run_config=tune.RunConfig(name="hand", storage_path=str(storage), verbose=0),
        )
        grid = tuner.fit()
    finally:
        if own:
            ray.shutdown()
        if previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)
    frame = grid.get_dataframe()
    if len(frame) != trials or frame["test_mse"].isna().any():
        raise RuntimeError(f"the hand loop finished {len(frame)} of {trials} trials with a test score")
    return {"trials": int(len(frame)), "fit_seconds": float(frame["fit_seconds"].sum()),
            "best_val_mse": float(frame["val_mse"].min())}


def _timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - started


def compare(rounds: int, trials: int, epochs: int, limit: int) -> dict[str, Any]:
    """Alternating rounds of the hand loop and caesweep (float32, auto), each a fresh process; medians."""
    from benchmarks import sweep_overhead

    walls: dict[str, list[float]] = {"hand": [], "float32": [], "auto": []}
    steady: list[float] = []
    for index in range(rounds):
        order = ["hand", "float32", "auto"] if index % 2 == 0 else ["auto", "float32", "hand"]
        for side in order:
            if side == "hand":
                with tempfile.TemporaryDirectory(prefix="caesweep-hand-") as tmp:
                    walls["hand"].append(_timed([sys.executable, "-m", "benchmarks.hand_loop", "run", "--trials",
                                                 str(trials), "--epochs", str(epochs), "--limit", str(limit),
                                                 "--storage", tmp]))
            else:
                measured = sweep_overhead.measure(trials, epochs, limit, precision=side)
                walls[side].append(measured["wall_seconds"])
                if side == "float32":
                    steady.append(measured["steady_overhead_per_trial_seconds"])
            print(f"round {index + 1}: {side} {walls[side][-1]:.1f} s", flush=True)
    median = {side: statistics.median(values) for side, values in walls.items()}
    return {
        "rounds": rounds, "trials": trials, "epochs": epochs, "images_per_split": limit, "walls": walls,
        "median_wall_seconds": median,
        "ratio_float32": median["float32"] / median["hand"], "ratio_auto": median["auto"] / median["hand"],
        "steady_overhead_float32_seconds": statistics.median(steady),
        "ratio_target": RATIO_TARGET, "steady_target_seconds": STEADY_TARGET,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("run", "compare"):
        s = sub.add_parser(name)
        s.add_argument("--trials", type=int, default=8)
        s.add_argument("--epochs", type=int, default=2)
        s.add_argument("--limit", type=int, default=512)
    sub.choices["run"].add_argument("--storage", type=Path, required=True, help="Ray Tune's storage folder")
    sub.choices["compare"].add_argument("--rounds", type=int, default=3)
    sub.choices["compare"].add_argument("--out", type=Path, default=Path("results/benchmarks/hand_loop.json"))
    args = p.parse_args(argv)
    if args.command == "run":
        print(json.dumps(run(args.trials, args.epochs, args.limit, args.storage)))
        return 0
    result = compare(args.rounds, args.trials, args.epochs, args.limit)
    m = result["median_wall_seconds"]
    print(f"{result['trials']} trials x {result['epochs']} epochs x {result['images_per_split']} images, "
          f"{result['rounds']} alternating rounds, median wall: hand loop {m['hand']:.1f} s, caesweep float32 "
          f"{m['float32']:.1f} s ({result['ratio_float32']:.2f}x), caesweep auto {m['auto']:.1f} s "
          f"({result['ratio_auto']:.2f}x; target <= {RATIO_TARGET}x); caesweep's steady overhead in float32 "
          f"{result['steady_overhead_float32_seconds']:.2f} s per trial (target < {STEADY_TARGET} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
