"""Which floating-point precision a model trains in, and the scope in which Keras is told.

``TrainConfig.precision`` asks for ``float32``, ``mixed_bfloat16``, ``mixed_float16`` or ``auto``;
:func:`resolve` turns it into the Keras dtype policy that runs (and a sentence saying why), from what the
machine offers (:class:`Hardware`, read by :func:`detect`):

- a CPU with AMX-BF16 or AVX-512 BF16 (the ``amx_bf16`` / ``avx512_bf16`` flags of ``/proc/cpuinfo``) runs
  bfloat16 convolutions natively: ``auto`` -> ``mixed_bfloat16`` (measured on these 2-core Xeons, AVX-512 BF16
  only: 1.9x the images/s of float32 for the 32-48-64 CAE, test MSE unchanged: docs/benchmarks.md, ``precision``);
- a GPU of compute capability 8.0 or later (Ampere on) has bfloat16 tensor cores as fast as float16 ones, and
  bfloat16 needs no loss scaling: ``mixed_bfloat16``; 7.x (Volta, Turing) has float16 tensor cores only:
  ``mixed_float16``, which Keras's ``compile`` wraps in a loss-scaling optimizer by itself; older GPUs and every
  other CPU: ``float32``.

``mixed_float16`` on a machine without a GPU is refused (TensorFlow's CPU kernels run float16 slowly, several
of them not at all). Mixed policies keep the weights in float32 and compute in 16 bits; the model's output
layer, the losses and every metric are float32 (:mod:`cae.models`, :mod:`cae.losses`).

Keras's policy is process-wide: :func:`policy_scope` sets it around building and training one model and puts
the previous one back; nothing here changes it at import. This module does not import TensorFlow unless asked
(:func:`detect` with ``tensorflow=True``, :func:`policy_scope`), so a command line can check a precision first.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cae.errors import ModelConfigError

FLOAT32, BFLOAT16, FLOAT16 = "float32", "mixed_bfloat16", "mixed_float16"
POLICIES = (FLOAT32, BFLOAT16, FLOAT16)  # Keras dtype policies a model may train in
AUTO = "auto"
PRECISIONS = (AUTO, *POLICIES)  # what TrainConfig.precision, --precision and a space accept
# CPU flags (Linux's names) of native bfloat16 arithmetic that oneDNN uses for convolutions and matrix products.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
# GPU compute capabilities: bfloat16 tensor cores from Ampere (8.0), float16 ones from Volta (7.0).
BF16_GPU, FP16_GPU = (8, 0), (7, 0)
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Hardware:
    """What the precision choice depends on: the CPU's flags and the GPU, if TensorFlow may use one."""

    cpu_flags: frozenset[str] = frozenset()
    gpu: bool = False  # a GPU this process may use
    compute_capability: tuple[int, int] | None = None  # the first GPU's, once TensorFlow has said (else None)

    def describe(self) -> str:
        if self.gpu:
            cc = "unknown compute capability" if self.compute_capability is None else (
                "compute capability {}.{}".format(*self.compute_capability))
            return f"a GPU ({cc})"
        bf16 = [flag for flag in BF16_CPU_FLAGS if flag in self.cpu_flags]
        return f"a CPU with {' and '.join(bf16)}" if bf16 else "a CPU without AMX-BF16 or AVX-512 BF16"


@dataclass(frozen=True)
class Choice:
    """The policy a run trains in, and why (one sentence, printed and recorded)."""

    policy: str
    reason: str


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The flags of the first processor in a ``/proc/cpuinfo`` text (empty when it has none: not x86 Linux)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def gpu_visible() -> bool:
    """Whether this process may see an NVIDIA GPU, asked without TensorFlow: the driver's control node exists
    and ``CUDA_VISIBLE_DEVICES`` does not hide every device (a sweep's CPU-only trials set it empty)."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1")
    return Path("/dev/nvidiactl").exists() and not hidden


@lru_cache(maxsize=2)
def detect(tensorflow: bool = False) -> Hardware:
    """This machine's :class:`Hardware`. Without ``tensorflow`` the GPU is guessed from the driver (no
    compute capability); with it, TensorFlow lists the GPUs it will use and says the first one's capability."""
    try:
        flags = cpu_flags(CPUINFO.read_text(errors="replace"))
    except OSError:
        flags = frozenset()
    if not tensorflow:
        return Hardware(cpu_flags=flags, gpu=gpu_visible())
    from cae.runtime import tf

    gpus = tf.config.list_physical_devices("GPU")
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") if gpus else None
    return Hardware(cpu_flags=flags, gpu=bool(gpus), compute_capability=None if capability is None
                    else (int(capability[0]), int(capability[1])))


def check(requested: str) -> None:
    """Raise :class:`ModelConfigError` for a precision that is not one of :data:`PRECISIONS`."""
    if requested not in PRECISIONS:
        raise ModelConfigError(f"precision {requested!r} is unknown; choose from {', '.join(PRECISIONS)}")


def resolve(requested: str, hardware: Hardware) -> Choice:
    """The Keras policy for ``requested`` on ``hardware``, and why.

    The same for every task and loss: the precision benchmark found none that loses quality in bfloat16
    (reconstruction with an MSE and with an SSIM loss, colorization; 5 training seeds each, test MSE and SSIM
    within the seed noise), so ``auto`` keeps float32 for none of them.

    Raises :class:`ModelConfigError` for an unknown precision and for ``mixed_float16`` without a GPU.
    """
    check(requested)
    if requested == FLOAT16 and not hardware.gpu:
        raise ModelConfigError(
            "precision mixed_float16 needs a GPU: on a CPU float16 is slow and several TensorFlow kernels lack it; "
            "use mixed_bfloat16 or auto"
        )
    if requested != AUTO:
        return Choice(requested, _as_asked(requested, hardware))
    policy, why = _fastest(hardware)
    return Choice(policy, f"auto: {why}")


def _fastest(hardware: Hardware) -> tuple[str, str]:
    """What ``auto`` picks on ``hardware``: the fastest policy it runs safely."""
    if hardware.gpu:
        cc = hardware.compute_capability
        if cc is None:
            return FLOAT32, "a GPU of unknown compute capability, so float32"
        if cc >= BF16_GPU:
            return BFLOAT16, f"{hardware.describe()} has bfloat16 tensor cores (needs no loss scaling)"
        if cc >= FP16_GPU:
            return FLOAT16, f"{hardware.describe()} has float16 tensor cores (trained with loss scaling)"
        return FLOAT32, f"{hardware.describe()} has no tensor cores, so float32"
    if any(flag in hardware.cpu_flags for flag in BF16_CPU_FLAGS):
        return BFLOAT16, f"{hardware.describe()} computes bfloat16 natively"
    return FLOAT32, f"{hardware.describe()}, so float32"


def _as_asked(policy: str, hardware: Hardware) -> str:
    fastest, _ = _fastest(hardware)
    if policy in (fastest, FLOAT32):
        return "as asked"
    return f"as asked, though {hardware.describe()} may run it slower than auto's {fastest}"


@contextlib.contextmanager
def policy_scope(policy: str) -> Iterator[None]:
    """Keras's global dtype policy set to ``policy`` inside the block, the previous one restored after it
    (also when the block raises). Layers built inside keep the policy; models saved from them load with it."""
    if policy not in POLICIES:
        raise ModelConfigError(f"policy {policy!r} is not one of {', '.join(POLICIES)}")
    from cae.runtime import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
