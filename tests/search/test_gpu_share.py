"""The GPU share of a trial: computed and applied before TensorFlow starts; the driver never imports it.

There is no GPU on the test machines, so the parts that need one are checked up to the point where
TensorFlow would have to see a device: the plan, the memory query (a stand-in nvidia-smi), the ordering.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cae.errors import CaesweepError
from search.gpu import CONTEXT_RESERVE_MB, HEADROOM, MIN_LIMIT_MB, parse_process_memory, plan_devices
from tests.search.conftest import REPO


def python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_plan_cpu_only() -> None:
    plan = plan_devices(0, 2, None)
    assert (plan.mode, plan.memory_limit_mb, plan.threads) == ("cpu", None, 2)


def test_plan_quarter_gpu_memory_limit() -> None:
    plan = plan_devices(0.25, 1, 81920)
    assert plan.mode == "limit"
    assert plan.memory_limit_mb == int(81920 * 0.25 * HEADROOM)
    # Four quarter-GPU trials fit on the device together.
    assert 4 * plan.memory_limit_mb <= 81920


def test_small_card_keeps_the_cuda_context_reserve() -> None:
    """On an 8 GiB card a quarter share minus 10 % would leave the CUDA context ~200 MiB (it takes ~610 MiB
    with PyTorch alone, measured on an H200): the fixed reserve wins, and a share too small is refused."""
    plan = plan_devices(0.25, 1, 8192)
    assert plan.memory_limit_mb == 2048 - CONTEXT_RESERVE_MB
    with pytest.raises(CaesweepError, match="larger --gpus-per-trial"):
        plan_devices(0.125, 1, 8192)  # 1024 MiB share: nothing left after the reserve
    assert plan_devices(0.25, 1, 4 * (CONTEXT_RESERVE_MB + MIN_LIMIT_MB)).memory_limit_mb == MIN_LIMIT_MB


def test_process_memory_from_a_real_nvidia_smi_answer() -> None:
    """The compute-apps query as an H200 answered it while four processes each held 17,971 MiB of tensors."""
    text = (Path(__file__).parent / "data" / "nvidia-smi-compute-apps-h200.txt").read_text()
    assert parse_process_memory(text) == {709: 18582, 708: 18582, 706: 18582}
    # Two GPUs: a process's lines add up; unreported memory and other lines are left out.
    assert parse_process_memory("12, 100\n12, 50\n13, [N/A]\nNo running processes found\n") == {12: 150}
    assert parse_process_memory("") == {}


def test_process_memory_query_runs_nvidia_smi(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text('#!/bin/sh\ncase "$1" in --query-compute-apps=pid,used_memory) printf "41, 900\\n";; esac\n')
    fake.chmod(0o755)
    proc = python(
        """
        from search import gpu
        from benchmarks.overhead import GpuProcessMemory
        print(gpu.gpu_process_memory_mb())
        with GpuProcessMemory(every=0.01) as memory:
            import time; time.sleep(0.2)
        print(memory.peaks, memory.samples > 1)
        """,
        env={"PATH": f"{tmp_path}:{os.environ['PATH']}"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["{41: 900}", "{41: 900} True"]


def test_plan_whole_gpu_and_growth() -> None:
    assert plan_devices(1, 4, None).mode == "growth"
    assert plan_devices(0.5, 1, None, mode="growth").mode == "growth"
    with pytest.raises(CaesweepError, match="growth"):
        plan_devices(0.25, 1, None, mode="limit")


def test_cpu_trial_hides_gpus_before_tensorflow_and_stays_quiet() -> None:
    proc = python(
        """
        import os, sys
        from search.gpu import configure_devices
        assert "tensorflow" not in sys.modules
        plan = configure_devices(0, 1)
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
        from cae.runtime import tf
        assert tf.config.threading.get_intra_op_parallelism_threads() == 1
        assert tf.config.list_physical_devices("GPU") == []
        assert configure_devices(0, 1) == plan  # a reused worker: same plan, nothing reapplied
        try:
            configure_devices(0, 2)
        except Exception as exc:
            print("refused:", exc)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "refused" in proc.stdout
    assert proc.stderr == ""  # no CUDA notices, warnings or errors on a CPU-only machine


def test_share_refused_once_tensorflow_has_started() -> None:
    proc = python(
        """
        from cae.runtime import tf
        tf.constant(1.0) + 1.0  # initialises the devices
        from search.gpu import configure_devices
        configure_devices(0, 1)
        """
    )
    assert proc.returncode != 0 and "initialised before" in proc.stderr


def test_fractional_share_queries_memory_and_needs_a_visible_gpu(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 81920\n")
    fake.chmod(0o755)
    proc = python(
        """
        import sys
        from search import gpu
        assert gpu.gpu_total_memory_mb() == 81920
        try:
            gpu.configure_devices(0.25, 1)
        except Exception as exc:
            print("error:", exc)
        print("plan:", gpu._applied)
        """,
        env={"PATH": f"{tmp_path}:{os.environ['PATH']}", "CUDA_VISIBLE_DEVICES": "0"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "memory_limit_mb=18432" in proc.stdout
    assert "TensorFlow sees none" in proc.stdout


def test_driver_never_imports_tensorflow() -> None:
    proc = python(
        """
        import sys
        import search.cli, search.commands, search.ray_engine, search.records, search.searcher, search.trial
        from search.options import SweepOptions
        from search.plan import plan_new
        import tempfile
        opts = SweepOptions(study="x", space="quick", limit=16, root=tempfile.mkdtemp())
        sweep = plan_new(opts)
        assert sweep.data.train.shape[1:] == (32, 32, 3)
        print("tensorflow" in sys.modules, "keras" in sys.modules)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]
