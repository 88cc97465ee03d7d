"""Tests for cae.precision and mixed-precision training: which policy auto picks for given hardware (never this
machine's), float32 outputs, losses and metrics under a mixed policy, the policy restored after a run, the policy
recorded, models that load and predict in float32, and the command line's refusals (one line, exit 2)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cae import checkpoint, precision
from cae.config import ModelConfig, RunConfig, TrainConfig, from_flat
from cae.data import Dataset
from cae.errors import ModelConfigError
from cae.precision import BFLOAT16, FLOAT16, FLOAT32, Hardware
from cae.runtime import keras
from cae.train import main as train_main
from spaces import space_from_dict
from tests.conftest import in_process

CPU_BF16 = Hardware(cpu_flags=frozenset({"fpu", "avx512f", "avx512_bf16"}))
CPU_AMX = Hardware(cpu_flags=frozenset({"amx_tile", "amx_bf16"}))
CPU_PLAIN = Hardware(cpu_flags=frozenset({"fpu", "avx2", "avx512f"}))
TINY = RunConfig(
    model=ModelConfig(filters=(4, 8), latent_dim=8),
    train=TrainConfig(task="reconstruct", epochs=2, batch_size=8, lr=3e-3, seed=0, precision=BFLOAT16),
    image_size=16,
)


@pytest.mark.parametrize(("hardware", "policy"), [
    (CPU_BF16, BFLOAT16),
    (CPU_AMX, BFLOAT16),
    (CPU_PLAIN, FLOAT32),
    (Hardware(), FLOAT32),  # no flags at all (not x86 Linux)
    (Hardware(cpu_flags=CPU_PLAIN.cpu_flags, gpu=True, compute_capability=(9, 0)), BFLOAT16),
    (Hardware(cpu_flags=CPU_PLAIN.cpu_flags, gpu=True, compute_capability=(8, 0)), BFLOAT16),
    (Hardware(gpu=True, compute_capability=(7, 5)), FLOAT16),
    (Hardware(gpu=True, compute_capability=(7, 0)), FLOAT16),
    (Hardware(gpu=True, compute_capability=(6, 1)), FLOAT32),
    (Hardware(cpu_flags=CPU_BF16.cpu_flags, gpu=True), FLOAT32),  # a GPU whose capability is not known yet
])
def test_auto_picks_the_fastest_safe_policy_for_the_hardware(hardware: Hardware, policy: str) -> None:
    choice = precision.resolve("auto", hardware)
    assert choice.policy == policy
    assert choice.reason.startswith("auto: ")


def test_auto_says_why() -> None:
    assert precision.resolve("auto", CPU_BF16).reason == "auto: a CPU with avx512_bf16 computes bfloat16 natively"
    assert "without AMX-BF16 or AVX-512 BF16" in precision.resolve("auto", CPU_PLAIN).reason
    assert "float16 tensor cores (trained with loss scaling)" in precision.resolve(
        "auto", Hardware(gpu=True, compute_capability=(7, 5))).reason


def test_an_explicit_policy_is_kept_and_a_slow_one_said() -> None:
    assert precision.resolve(FLOAT32, CPU_BF16) == precision.Choice(FLOAT32, "as asked")
    assert precision.resolve(BFLOAT16, CPU_BF16) == precision.Choice(BFLOAT16, "as asked")
    slow = precision.resolve(BFLOAT16, CPU_PLAIN)
    assert slow.policy == BFLOAT16 and "may run it slower than auto's float32" in slow.reason
    assert precision.resolve(FLOAT16, Hardware(gpu=True, compute_capability=(8, 6))).policy == FLOAT16


def test_float16_without_a_gpu_and_unknown_policies_are_refused() -> None:
    with pytest.raises(ModelConfigError, match="mixed_float16 needs a GPU"):
        precision.resolve(FLOAT16, CPU_BF16)
    with pytest.raises(ModelConfigError, match="precision 'float8' is unknown; choose from auto, float32"):
        precision.resolve("float8", CPU_BF16)


def test_cpu_flags_are_read_from_a_cpuinfo_text() -> None:
    text = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16\n\nprocessor\t: 1\n"
    assert precision.cpu_flags(text) == {"fpu", "avx512f", "avx512_bf16", "amx_bf16"}
    assert precision.cpu_flags("processor : 0\nFeatures : fp asimd\n") == frozenset()


def test_a_hidden_gpu_is_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not precision.gpu_visible()


def test_the_policy_scope_restores_the_previous_policy_even_on_error() -> None:
    assert keras.mixed_precision.global_policy().name == FLOAT32
    with pytest.raises(RuntimeError), precision.policy_scope(BFLOAT16):
        assert keras.mixed_precision.global_policy().name == BFLOAT16
        raise RuntimeError("inside")
    assert keras.mixed_precision.global_policy().name == FLOAT32
    with pytest.raises(ModelConfigError):
        precision.policy_scope("auto").__enter__()


def test_precision_is_a_training_setting_a_space_may_search() -> None:
    assert TrainConfig().precision == FLOAT32  # unless asked, every run keeps float32
    run = from_flat({"precision": "auto", "filters": "8-16", "image_size": 16})
    assert run.train.precision == "auto" and run.to_flat()["precision"] == "auto"
    assert from_flat(run.to_flat()) == run
    with pytest.raises(ModelConfigError, match="precision 'half' is unknown"):
        from_flat({"precision": "half"})
    space = space_from_dict({"name": "p", "fixed": {"task": "reconstruct"},
                             "params": {"precision": {"choices": ["float32", "mixed_bfloat16"], "role": "nuisance"}}})
    assert [p.name for p in space.params] == ["precision"]


def test_under_a_mixed_policy_the_output_losses_and_metrics_are_float32() -> None:
    from cae.losses import METRICS, get_loss
    from cae.models import build_model

    with precision.policy_scope(BFLOAT16):
        model = build_model(TINY.model, 16, 3, 3)
    assert model.get_layer("enc0_conv0").compute_dtype == "bfloat16"
    assert model.get_layer("output").compute_dtype == "float32"
    x = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype("float32")
    pred = model(x, training=False)
    assert pred.dtype == "float32"
    half = keras.ops.cast(pred, "bfloat16")  # a 16-bit prediction still scores in float32
    for fn in (*(get_loss(name) for name in ("mse", "ssim", "mse+ssim")), *METRICS):
        assert fn(x, half).dtype == "float32", fn.__name__


@pytest.fixture(scope="module")
def mixed_run(tiny_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A tiny run trained in mixed_bfloat16, what its hook saw, and the model saved as a user would."""
    from cae.training import train

    seen: list[str] = []
    result = train(TINY, tiny_dataset, hooks=[lambda state: seen.append(state.precision)])
    path = tmp_path_factory.mktemp("mixed") / "model.keras"
    result.model.save(path)
    return result, seen, path


def test_a_mixed_run_records_its_policy_and_restores_float32(mixed_run: tuple) -> None:
    result, seen, _ = mixed_run
    assert keras.mixed_precision.global_policy().name == FLOAT32  # set for the run only
    assert result.precision == BFLOAT16 and result.precision_reason == "as asked"
    assert seen == [BFLOAT16, BFLOAT16]
    assert result.summary()["precision"] == BFLOAT16 and result.config["precision"] == BFLOAT16
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["val_mse"]) for r in result.history)
    assert np.isfinite(result.test["test_mse"])


def test_auto_is_resolved_and_recorded(tiny_dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    from cae.training import train

    monkeypatch.setattr(precision, "detect", lambda tensorflow=False: CPU_PLAIN)
    run = replace(TINY, train=replace(TINY.train, precision="auto", epochs=1))
    result = train(run, tiny_dataset, evaluate_test=False)
    assert result.precision == FLOAT32 and result.config["precision"] == "auto"
    assert result.precision_reason.startswith("auto: a CPU without")


def test_a_mixed_model_loads_and_predicts_in_float32(mixed_run: tuple, tiny_dataset: Dataset) -> None:
    from cae.models import load_model

    result, _, path = mixed_run
    x = tiny_dataset.test
    expected = np.asarray(result.model(x, training=False))
    plain = keras.models.load_model(path)  # in this float32 process, as saved: its output is float32
    assert np.asarray(plain(x)).dtype == np.float32
    np.testing.assert_allclose(np.asarray(plain(x)), expected, atol=1e-6)
    loaded = load_model(str(path))  # float32 throughout, the same weights
    assert {layer.compute_dtype for layer in loaded.layers if layer.weights} == {"float32"}
    out = np.asarray(loaded(x, training=False))
    assert out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(out, expected, atol=0.03)  # bfloat16 keeps ~3 significant digits
    assert np.isfinite(loaded.evaluate(x, x, verbose=0)[0])


@pytest.mark.parametrize("full", [True, False], ids=["full", "light"])
def test_a_resumed_mixed_run_keeps_its_policy(
    full: bool, mixed_run: tuple, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    from cae.training import model_policy, train

    result, _, _ = mixed_run
    folder = checkpoint.save(tmp_path, result.model, checkpoint.Progress(epoch=1, history=result.history[:1],
                                                                         best_epoch=1, best_val=1.0), None, full=full)
    asked_float32 = replace(TINY, train=replace(TINY.train, precision=FLOAT32))
    resumed = train(asked_float32, tiny_dataset, resume_from=str(folder), evaluate_test=False)
    assert resumed.precision == BFLOAT16 and "resumed from a checkpoint" in resumed.precision_reason
    assert model_policy(resumed.model) == BFLOAT16  # built in the checkpoint's policy, not the one asked for
    assert keras.mixed_precision.global_policy().name == FLOAT32


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--precision", "half"], "precision 'half' is unknown; choose from auto, float32, mixed_bfloat16, mixed_float16"),
    (["--precision", "mixed_float16"], "precision mixed_float16 needs a GPU"),
])
def test_the_cli_refuses_in_one_line_and_writes_nothing(
    argv: list[str], fragment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(precision, "detect", lambda tensorflow=False: CPU_BF16)  # a CPU, whatever runs the test
    out = tmp_path / "result.json"
    done = in_process(train_main, "--limit", "16", "--image-size", "16", *argv, "--json", str(out))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and fragment in done.stderr
    assert not out.exists()
