"""``overhead``: the suite's own cost, measured side by side in one run and printed as ratios.

1. **Training throughput**: :func:`benchmarks.train_throughput.measure`, the suite's loop vs a bare
   ``model.fit`` on the same model and arrays (target: ratio >= 0.95).
2. **Per-trial overhead of a sweep**: :func:`benchmarks.sweep_overhead.measure`, a real sweep, one trial at a
   time: the steady overhead per trial (from one trial's final report to the next one's, less the next one's
   training; target: < 2 s on CPU), the once-per-sweep start-up (Ray, imports, TensorFlow in the worker, the
   first trial's one-time costs) and tear-down, and the overhead per trial with them shared among the trials.
3. **Peak memory of K concurrent trials vs one**: while the sweep of (2) runs, and while the same sweep runs
   with K = 2 trials at once, every process it started (the driver, Ray's processes and workers) is sampled
   from ``/proc`` and its proportional set size summed (PSS: a page shared by n processes counts 1/n in each,
   so shared memory counts once). The shared-memory part (``Pss_Shmem``) is Ray's object store, where the
   dataset is held once for all trials; the rest grows with each concurrent trial (its TensorFlow runtime,
   model and input pipeline).
4. **GPU sharing** (only with an NVIDIA GPU): aggregate training images/s of 1, 2 and 4 trials sharing one
   GPU (``--gpus-per-trial 1, 0.5, 0.25``), and each trial process's peak GPU memory as nvidia-smi reports it
   (CUDA context included) against its share of the card; on a machine without one the result says it was
   skipped.

``--budget`` is the number of trials of each timed sweep (at least 2, so that two can run at once);
``--limit`` the images per split of the sweeps (default 512, as ``sweep_overhead``) and the training images
of the throughput comparison (default 2048).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from analysis.document import Block, Bullets, Heading, Table, Text
from benchmarks import output, sweep_overhead, train_throughput
from benchmarks.definitions import RunPlan

CONCURRENT = 2  # K: the trials run at once in the memory comparison (the CPUs of this machine)
SAMPLE_SECONDS = 0.2
GPU_SAMPLE_SECONDS = 0.5  # nvidia-smi takes tens of milliseconds a call
SWEEP_EPOCHS = 2
GPU_SHARES = (1, 2, 4)
QUICK_BELOW = 256  # a --limit below this is a smoke test: fewer throughput epochs and rounds
PROC = Path("/proc")


def run(plan: RunPlan) -> dict[str, Any]:
    started = time.time()
    limit = plan.limit if plan.limit is not None else 512
    quick = plan.limit is not None and plan.limit < QUICK_BELOW
    images = plan.limit if plan.limit is not None else 2048
    print(f"training throughput ({images} images)...", flush=True)
    throughput = train_throughput.measure(images=images, epochs=2 if quick else 3, repeats=1 if quick else 2,
                                          image_size=plan.image_size, precision=plan.precision or "float32")
    print(f"sweep overhead and memory, {plan.budget} trials one at a time...", flush=True)
    with PeakMemory() as single:
        overhead = sweep_overhead.measure(trials=plan.budget, epochs=SWEEP_EPOCHS, limit=limit,
                                          precision=plan.precision)
    print(f"memory, {plan.budget} trials {CONCURRENT} at a time...", flush=True)
    with PeakMemory() as several:
        concurrent_sweep(plan.budget, SWEEP_EPOCHS, limit, CONCURRENT, precision=plan.precision)
    memory = memory_result(single.peak, several.peak, dataset_mb(limit, 32))
    gpu = gpu_sharing(plan.budget, limit, plan.precision)
    ratios = summary(throughput, overhead, memory, gpu)
    result = {"summary": output.records(ratios), "throughput": throughput, "sweep_overhead": overhead,
              "memory": memory, "gpu": gpu}
    return output.write(plan, result, blocks(plan, ratios, overhead, memory, gpu), started=started)


# -- memory ----------------------------------------------------------------------------------------------------


def read_pss(pid: int) -> dict[str, int]:
    """Pss, Pss_Anon and Pss_Shmem of a process in kB (``smaps_rollup``); empty when it is gone or unreadable."""
    try:
        text = (PROC / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Pss", "Pss_Anon", "Pss_Shmem"):
            values[key] = int(rest.split()[0])
    return values


def descendants(root: int) -> list[int]:
    """Every process started (directly or not) by ``root``, from the parent ids in ``/proc/<pid>/stat``."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # the command name may hold spaces and parentheses
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_memory(root: int) -> dict[str, float]:
    """The summed PSS (MB) of every process below ``root``, its shared-memory part, and how many there were."""
    totals = {"Pss": 0, "Pss_Anon": 0, "Pss_Shmem": 0}
    pids = descendants(root)
    for pid in pids:
        for key, value in read_pss(pid).items():
            totals[key] += value
    return {"pss_mb": totals["Pss"] / 1024, "anon_mb": totals["Pss_Anon"] / 1024,
            "shmem_mb": totals["Pss_Shmem"] / 1024, "processes": float(len(pids))}


_S = TypeVar("_S", bound="Sampler")


class Sampler:
    """Calls ``take`` every ``every`` seconds in a thread while the ``with`` block runs (and once at its start)."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def take(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.take()
            self.samples += 1
            self._stop.wait(self.every)

    def __enter__(self: _S) -> _S:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class PeakMemory(Sampler):
    """Samples :func:`tree_memory` of this process's descendants; ``peak`` is the largest PSS seen."""

    def __init__(self, root: int | None = None, every: float = SAMPLE_SECONDS,
                 sample: Callable[[int], dict[str, float]] = tree_memory) -> None:
        super().__init__(every)
        self.root = os.getpid() if root is None else root
        self.sample = sample
        self.peak: dict[str, float] = {"pss_mb": 0.0, "anon_mb": 0.0, "shmem_mb": 0.0, "processes": 0.0}

    def take(self) -> None:
        now = self.sample(self.root)
        if now["pss_mb"] > self.peak["pss_mb"]:
            self.peak = now


def dataset_mb(images_per_split: int, size: int) -> float:
    """Bytes of three float32 RGB splits of ``images_per_split`` images, in MB."""
    return 3 * images_per_split * size * size * 3 * 4 / 2**20


def memory_result(single: dict[str, float], several: dict[str, float], dataset: float) -> dict[str, Any]:
    """Peak memory with K trials at once vs one, and what each extra concurrent trial costs."""
    if single["pss_mb"] <= 0:
        return {"skipped": f"no readable {PROC}/<pid>/smaps_rollup on this machine"}
    return {
        "concurrent": CONCURRENT,
        "single": single,
        "concurrent_peak": several,
        "ratio": several["pss_mb"] / single["pss_mb"],
        "per_extra_trial_mb": (several["pss_mb"] - single["pss_mb"]) / (CONCURRENT - 1),
        "dataset_mb": dataset,
        "object_store_ratio": several["shmem_mb"] / single["shmem_mb"] if single["shmem_mb"] > 0 else None,
    }


def concurrent_sweep(trials: int, epochs: int, limit: int, concurrency: int, gpus: float = 0.0,
                     precision: str | None = None) -> pd.DataFrame:
    """The sweep of ``sweep_overhead`` with ``concurrency`` trials at once (a subprocess); its trial table."""
    cpus = max(1.0, float(os.cpu_count() or 1) / concurrency)
    with tempfile.TemporaryDirectory(prefix="caesweep-memory-") as tmp:
        space = Path(tmp) / "overhead.yaml"
        space.write_text(sweep_overhead.space_text(precision))
        cmd = [
            sys.executable, "-m", "search", "run", "--space", str(space), "--study", "memory", "--root", tmp,
            "--samples", str(trials), "--max-epochs", str(epochs), "--limit", str(limit), "--scheduler", "none",
            "--concurrency", str(concurrency), "--cpus-per-trial", str(cpus), "--gpus-per-trial", str(gpus),
        ]
        proc = subprocess.run(cmd, cwd=sweep_overhead.REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"the sweep with {concurrency} trials at once failed:\n{proc.stderr[-2000:]}")
        return pd.read_csv(Path(tmp) / "memory" / "trials.csv")


# -- GPU --------------------------------------------------------------------------------------------------------


def has_gpu() -> bool:
    from cae.runtime import has_nvidia_device

    return has_nvidia_device()


class GpuProcessMemory(Sampler):
    """Samples nvidia-smi's memory per process; ``peaks`` is each process's largest use (MiB).

    Every compute process on the GPU is counted: run it where the sweep's trials are the GPU's only users."""

    def __init__(self, every: float = GPU_SAMPLE_SECONDS,
                 sample: Callable[[], dict[int, int] | None] | None = None) -> None:
        from search.gpu import gpu_process_memory_mb

        super().__init__(every)
        self.sample = sample or gpu_process_memory_mb
        self.peaks: dict[int, int] = {}

    def take(self) -> None:
        for pid, mib in (self.sample() or {}).items():
            self.peaks[pid] = max(mib, self.peaks.get(pid, 0))


def gpu_sharing(trials: int, limit: int, precision: str | None = None) -> dict[str, Any]:
    """Aggregate images/s of 1, 2 and 4 trials sharing one GPU, and each trial process's peak GPU memory
    (nvidia-smi) against its share of the card; skipped (not an error) without a GPU."""
    from search.gpu import gpu_total_memory_mb, share_limit_mb

    if not has_gpu():
        return {"skipped": "no GPU on this machine"}
    total = gpu_total_memory_mb()
    rows: list[dict[str, Any]] = []
    for k in GPU_SHARES:
        with GpuProcessMemory() as memory:
            table = concurrent_sweep(max(trials, k), SWEEP_EPOCHS, limit, k, gpus=1 / k, precision=precision)
        # Trials that ran at the same time add up; each one's images/s is over its own epochs.
        row: dict[str, Any] = {
            "trials_sharing": k,
            "images_per_second": float(table["images_per_second"].head(k).sum()),
            "processes": len(memory.peaks),
            "peak_process_mb": max(memory.peaks.values(), default=None),
        }
        if total is not None:
            row["share_mb"] = total / k
            row["tensorflow_limit_mb"] = None if k == 1 else share_limit_mb(total, 1 / k)  # memory growth at k = 1
            row["under_share"] = row["peak_process_mb"] is not None and row["peak_process_mb"] <= row["share_mb"]
        rows.append(row)
    base = rows[0]["images_per_second"]
    for row in rows:
        row["speedup"] = row["images_per_second"] / base if base > 0 else None
    return {"gpu_memory_mb": total, "shares": rows}


# -- the result -------------------------------------------------------------------------------------------------


def summary(throughput: dict[str, Any], overhead: dict[str, Any], memory: dict[str, Any],
            gpu: dict[str, Any]) -> pd.DataFrame:
    """One row per measure: its value, the target and whether it is met."""
    rows = [
        {"measure": "in-trial training throughput / bare model.fit", "value": throughput["ratio"],
         "target": ">= 0.95", "met": throughput["ratio"] >= train_throughput.TARGET_RATIO},
        {"measure": "sweep overhead per trial, steady (s)", "value": overhead["steady_overhead_per_trial_seconds"],
         "target": "< 2", "met": overhead["steady_overhead_per_trial_seconds"] < overhead["target_seconds"]},
        {"measure": "sweep start-up + tear-down, once per sweep (s)",
         "value": overhead["startup_seconds"] + overhead["teardown_seconds"], "target": "", "met": None},
        {"measure": f"sweep overhead per trial, start-up shared by {overhead['trials']} trials (s)",
         "value": overhead["overhead_per_trial_seconds"], "target": "< 2",
         "met": overhead["overhead_per_trial_seconds"] < overhead["target_seconds"]},
        {"measure": "trials per sweep from which the shared overhead is < 2 s",
         "value": overhead["trials_to_meet_target"], "target": "", "met": None},
    ]
    if "ratio" in memory:
        rows.append({"measure": f"peak memory, {CONCURRENT} trials at once / one", "value": memory["ratio"],
                     "target": f"< {CONCURRENT}", "met": memory["ratio"] < CONCURRENT})
        if memory["object_store_ratio"] is not None:
            rows.append({"measure": f"shared memory (object store), {CONCURRENT} trials / one",
                         "value": memory["object_store_ratio"], "target": "~1 (dataset held once)",
                         "met": memory["object_store_ratio"] < 1.5})
    for share in gpu.get("shares", []):
        rows.append({"measure": f"GPU images/s, {share['trials_sharing']} trials / 1 trial", "value": share["speedup"],
                     "target": ">= 1", "met": (share["speedup"] or 0) >= 1})
        if share.get("share_mb") and share["peak_process_mb"] is not None:
            rows.append({"measure": f"GPU memory of the largest trial process / its share, {share['trials_sharing']} "
                                    "trials", "value": share["peak_process_mb"] / share["share_mb"],
                         "target": "<= 1", "met": share["under_share"]})
    return pd.DataFrame(rows)


def steady_parts(overhead: dict[str, Any]) -> str:
    """Where the steady overhead of a trial goes: the trial's own parts and the time between trials."""
    parts = ", ".join(f"{part} {overhead[f'{part}_seconds_per_trial']:.2f} s" for part in sweep_overhead.PARTS)
    return (f"steady overhead per trial {overhead['steady_overhead_per_trial_seconds']:.2f} s: {parts} inside the "
            f"trial, {overhead['between_trials_seconds_per_trial']:.2f} s between trials and the rest (Ray, Optuna, "
            "the driver; TensorBoard's events); "
            f"once per sweep: start-up {overhead['startup_seconds']:.1f} s, "
            f"tear-down {overhead['teardown_seconds']:.1f} s")


def blocks(plan: RunPlan, ratios: pd.DataFrame, overhead: dict[str, Any], memory: dict[str, Any],
           gpu: dict[str, Any]) -> list[Block]:
    notes = [steady_parts(overhead)]
    if "ratio" in memory:
        one, several = memory["single"], memory["concurrent_peak"]
        notes.append(
            f"peak PSS: {one['pss_mb']:.0f} MB with one trial ({one['processes']:.0f} processes), "
            f"{several['pss_mb']:.0f} MB with {CONCURRENT} at once ({several['processes']:.0f} processes): "
            f"{memory['per_extra_trial_mb']:.0f} MB per extra trial; shared memory (Ray's object store) "
            f"{one['shmem_mb']:.0f} MB vs {several['shmem_mb']:.0f} MB for a dataset of {memory['dataset_mb']:.0f} MB"
        )
    else:
        notes.append(f"memory: skipped ({memory['skipped']})")
    notes.append(f"GPU sharing: skipped ({gpu['skipped']})" if "skipped" in gpu else
                 "GPU sharing: " + ", ".join(
                     f"{s['trials_sharing']} trials {s['images_per_second']:,.0f} images/s, largest process "
                     f"{s['peak_process_mb'] or 0:,.0f} MiB of a {s.get('share_mb') or 0:,.0f} MiB share "
                     f"({s['processes']} processes seen)" for s in gpu["shares"]))
    return [
        Text(f"Sweeps of {plan.budget} trials x {SWEEP_EPOCHS} epochs on the embedded data, "
             f"{plan.limit if plan.limit is not None else 512} images per split; throughput of the 32-48-64 "
             f"baseline at {plan.image_size}x{plan.image_size}."),
        Heading("Ratios"),
        Table(ratios, formats={"value": "ratio"}),
        Bullets(notes),
    ]
