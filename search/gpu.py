"""A share of a GPU per trial, configured inside the trial before TensorFlow touches a device.

Ray schedules ``--gpus-per-trial 0.25`` as a quarter GPU: four trials on one device. Ray only sets
``CUDA_VISIBLE_DEVICES``; TensorFlow would still grab (almost) all the memory of that device in the first
trial. So each trial, as its very first step, limits TensorFlow to its share: a logical device with
``share x total memory`` (minus headroom for the CUDA context), or on-demand memory growth. This must happen
before TensorFlow initialises its devices, which is why it lives here and runs before ``cae.training`` is
imported. The driver never imports TensorFlow at all.

With no GPU asked for (the default, and the only option on a machine without one), the GPUs are hidden
from TensorFlow so it starts on the CPU quietly.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from cae.errors import CaesweepError

# Of each share, TensorFlow gets what is left after the larger of 10 % (allocator fragmentation) and a fixed
# reserve for the process's CUDA context, which nvidia-smi charges to the process outside TensorFlow's limit.
# Measured on an NVIDIA H200 (driver 580.159): a process holding n MiB of tensors shows n + 610 MiB in
# nvidia-smi (PyTorch; TensorFlow also loads cuDNN and cuBLAS, hence the reserve of 1 GiB). On a large card
# the 10 % dominates; on a small one a quarter share minus 10 % would leave too little for the context.
HEADROOM = 0.9
CONTEXT_RESERVE_MB = 1024
MIN_LIMIT_MB = 512  # below this a share cannot train anything useful



@dataclass(frozen=True)
class DevicePlan:
    """What a trial will ask TensorFlow for."""

    gpus: float  # the share Ray gave this trial (0 = CPU only)
    mode: str  # "cpu", "limit" or "growth"
    memory_limit_mb: int | None  # the logical device's memory for "limit"
    threads: int  # TensorFlow intra-op threads (the trial's CPUs)


_applied: list[DevicePlan] = []  # the plan this process applied (TensorFlow's device setup is per process)


def plan_devices(gpus: float, cpus: float, total_memory_mb: int | None, mode: str = "limit") -> DevicePlan:
    """Decide the device setup of a trial from its Ray resources and the GPU's total memory."""
    threads = max(1, int(cpus))
    if gpus <= 0:
        return DevicePlan(0.0, "cpu", None, threads)
    if gpus >= 1 or mode == "growth":
        # A whole GPU (or several) is the trial's own; growth lets co-located trials share politely.
        return DevicePlan(gpus, "growth", None, threads)
    if total_memory_mb is None:
        raise CaesweepError("cannot read the GPU's memory size (nvidia-smi failed); use --gpu-memory growth")
    limit = share_limit_mb(total_memory_mb, gpus)
    if limit < MIN_LIMIT_MB:
        raise CaesweepError(
            f"a {gpus:g} share of this GPU's {total_memory_mb} MiB leaves TensorFlow {limit} MiB after the CUDA "
            f"context's reserve; give each trial a larger --gpus-per-trial"
        )
    return DevicePlan(gpus, "limit", limit, threads)


def share_limit_mb(total_memory_mb: int, gpus: float) -> int:
    """TensorFlow's memory limit for a ``gpus`` share of a card of ``total_memory_mb`` MiB."""
    share = total_memory_mb * gpus
    return int(math.floor(share - max(share * (1 - HEADROOM), CONTEXT_RESERVE_MB)))


def gpu_total_memory_mb() -> int | None:
    """Total memory of the first GPU visible to this process, from nvidia-smi (None when unknown)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    cmd = [exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits"]
    if visible:
        cmd += ["-i", visible]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=True).stdout
        return int(float(out.strip().splitlines()[0]))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def gpu_process_memory_mb() -> dict[int, int] | None:
    """GPU memory in use by each process on the GPUs, from nvidia-smi: ``{pid: MiB}`` (None when unknown).

    This is the memory the driver charges to the process (CUDA context included), the figure a share must hold."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    cmd = [exe, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_process_memory(out)


def parse_process_memory(text: str) -> dict[int, int]:
    """``pid, used_memory`` lines of nvidia-smi's compute-apps query, summed per process over the GPUs; lines
    whose memory is not reported (``[N/A]``, as under some virtualisation) are left out."""
    usage: dict[int, int] = {}
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 2 or not fields[0].isdigit():
            continue
        try:
            mib = int(float(fields[1]))
        except ValueError:
            continue
        usage[int(fields[0])] = usage.get(int(fields[0]), 0) + mib
    return usage


def configure_devices(gpus: float, cpus: float, mode: str = "limit") -> DevicePlan:
    """Apply the plan to TensorFlow. Must run before TensorFlow is imported in this process."""
    if gpus <= 0:
        # Hide GPUs before TensorFlow loads: no CUDA initialisation, no device notices.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    plan = plan_devices(gpus, cpus, gpu_total_memory_mb() if 0 < gpus < 1 and mode == "limit" else None, mode)
    if _applied:
        # A reused worker process: the devices were set up by an earlier trial with the same resources.
        if _applied[0] != plan:
            raise CaesweepError(f"this worker was set up for {_applied[0]}, not {plan}; disable actor reuse")
        return plan
    if "tensorflow" in sys.modules and _devices_initialised():
        raise CaesweepError("TensorFlow was initialised before the trial's GPU share was applied")
    from cae.runtime import tf

    tf.config.threading.set_intra_op_parallelism_threads(plan.threads)
    tf.config.threading.set_inter_op_parallelism_threads(min(2, plan.threads))
    _applied.append(plan)
    if plan.mode == "cpu":
        return plan
    gpus_found = tf.config.list_physical_devices("GPU")
    if not gpus_found:
        raise CaesweepError(
            f"this trial was given {gpus} GPU but TensorFlow sees none; install caesweep[gpu] on the GPU nodes"
        )
    for device in gpus_found:
        if plan.mode == "growth":
            tf.config.experimental.set_memory_growth(device, True)
        else:
            tf.config.set_logical_device_configuration(
                device, [tf.config.LogicalDeviceConfiguration(memory_limit=plan.memory_limit_mb)]
            )
    return plan


def _devices_initialised() -> bool:
    from cae.runtime import tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(tf.config.threading.get_intra_op_parallelism_threads())
    except RuntimeError:
        return True
    return False
