"""MLflow logging (``--mlflow``): every trial one run of a real ``mlflow server`` (SQLite backend, loopback), read
back through MLflow's own client: parameters, per-epoch metrics, final scores, tags, the kept model; a SIGKILLed
driver's study resumed into the same runs; a server that does not answer refused before anything is written;
a study that logged is resumed only with the server named again (or ``--no-mlflow``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from benchmarks.sweep_overhead import loopback_mlflow
from search.cli import main
from search.mlflow_log import RUN_STATUS
from tests.conftest import in_process, read_study_table
from tests.search.conftest import search_cli, search_popen
from tests.search.test_cli_errors import assert_user_error

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


SWEEP = ("--samples", "2", "--max-epochs", "2", "--limit", "16", "--sampler", "random", "--scheduler", "none",
         "--concurrency", "1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server on loopback, its runs in SQLite and its artifacts in a folder (the one the
    overhead benchmark starts)."""
    with loopback_mlflow(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


def runs_of(uri: str, study: str) -> dict[str, object]:
    """The study's active runs by trial id (MLflow's client, as a user reads them)."""
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    by_trial = {r.data.tags["trial_id"]: r for r in runs}
    assert len(by_trial) == len(runs)  # one run per trial
    return by_trial


def steps(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    history = mlflow.MlflowClient(uri).get_metric_history(run_id, key)
    return sorted((int(m.step), float(m.value)) for m in history)


CURVES = ("loss", "val_mse", "val_psnr", "seconds")


def check_curves(uri: str, runs: dict[str, object], history: pd.DataFrame, keys: tuple[str, ...] = CURVES) -> None:
    """Every epoch of history.csv once in its trial's run (the metric ``epoch`` marks each step logged), with
    the same values of ``keys``."""
    for trial_id, curve in history.sort_values("epoch").groupby("trial_id"):
        run_id = runs[str(trial_id)].info.run_id
        for key in keys:
            logged = steps(uri, run_id, key)
            assert [s for s, _ in logged] == list(curve["epoch"].astype(int)), (trial_id, key)
            assert [v for _, v in logged] == pytest.approx(list(curve[key].astype(float))), (trial_id, key)
        assert [s for s, _ in steps(uri, run_id, "epoch")] == sorted(curve["epoch"].astype(int))


def test_each_trial_is_one_run_with_its_params_epochs_scores_tags_and_model(
    tmp_path: Path, tiny_space: Path, server: str, private_ray: None
) -> None:
    # Credentials in the URI (this server asks for none) reach the server, never the study folder nor a message.
    secret = server.replace("http://", "http://ann:s3cret@")
    shown = server.replace("http://", "http://ann:***@")
    proc = in_process(main, "run", "--space", str(tiny_space), "--study", "ml", "--root", str(tmp_path), *SWEEP,
                      "--mlflow", secret)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "s3cret" not in proc.stdout + proc.stderr
    folder = tmp_path / "ml"
    assert not [p for p in folder.rglob("*") if p.is_file() and b"s3cret" in p.read_bytes()]
    trials = read_study_table(folder / "trials.csv").set_index("trial_id")
    runs = runs_of(server, "ml")
    assert set(runs) == set(trials.index) and len(runs) == 2
    meta = pd.read_json(folder / "study.json", typ="series")
    assert meta["options"]["mlflow"] == shown and meta["mlflow"]["experiment"] == "ml"
    client = mlflow.MlflowClient(server)
    for trial_id, run in runs.items():
        row = trials.loc[trial_id]
        assert run.info.status == "FINISHED" and run.info.run_name == trial_id
        tags = run.data.tags
        assert (tags["study"], tags["study_id"], tags["status"]) == ("ml", meta["study_id"], "COMPLETE")
        assert tags["architecture"] == row["architecture"]
        params = run.data.params  # the resolved configuration: sampled, fixed and the command line's
        assert float(params["lr"]) == pytest.approx(row["lr"]) and params["filters"] == row["filters"]
        assert int(params["latent_dim"]) == row["latent_dim"]
        assert (params["task"], params["image_size"], params["max_epochs"]) == ("reconstruct", "16", "2")
        final = run.data.metrics  # the final and kept-epoch scores, at the last epoch
        for key in ("test_mse", "skill", "params", "best_epoch"):
            assert final[key] == pytest.approx(row[key]), key
        assert final["kept_val_mse"] == pytest.approx(row["val_mse"])
        assert steps(server, run.info.run_id, "test_mse") == [(2, pytest.approx(row["test_mse"]))]
        # The kept model, byte for byte the study's models/<trial>.keras.
        (artifact,) = client.list_artifacts(run.info.run_id, "model")
        assert artifact.path == "model/model.keras"
        local = client.download_artifacts(run.info.run_id, "model/model.keras", str(tmp_path))
        assert Path(local).read_bytes() == (folder / "models" / f"{trial_id}.keras").read_bytes()
    check_curves(server, runs, read_study_table(folder / "history.csv"))

    # Resumed without naming the server: refused, how to go on said; --no-mlflow goes on and logs nothing.
    proc = in_process(main, "resume", "--study", "ml", "--root", str(tmp_path), "--samples", "3")
    assert_user_error(proc, "logs its trials to MLflow", f"--mlflow {shown}", "--no-mlflow")
    proc = in_process(main, "resume", "--study", "ml", "--root", str(tmp_path), "--samples", "3", "--no-mlflow")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(read_study_table(folder / "trials.csv")) == 3
    assert set(runs_of(server, "ml")) == set(runs)


def runs_started(uri: str, study: str) -> int:
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    return 0 if experiment is None else len(client.search_runs([experiment.experiment_id]))


def first_epoch_reported(folder: Path) -> bool:
    return any(f.read_text().strip() for f in folder.glob("ray/run-*/trial_*/result.json"))


def test_a_killed_driver_resumes_into_the_same_runs(tmp_path: Path, tiny_space: Path, server: str) -> None:
    """SIGKILLed (driver and trials) at a trial's first epoch, resumed: each trial still one run, a continued
    trial's run the one it started, every epoch logged once, each run's status its trial's (ASHA: a pruned trial's
    run KILLED, whichever it prunes); the server named by MLFLOW_TRACKING_URI."""
    folder, env = tmp_path / "k", {"MLFLOW_TRACKING_URI": server}
    args = ("--space", str(tiny_space), "--study", "k", "--root", str(tmp_path), "--samples", "3", "--max-epochs",
            "3", "--limit", "48", "--scheduler", "asha", "--concurrency", "1")
    proc = search_popen("run", *args, log=tmp_path / "run.log", env=env)
    deadline = time.time() + 240
    # Killed once a trial has reported an epoch and its run exists (a trial's requests go out from a thread of
    # its own: the run may be made after the epoch is reported).
    while not (first_epoch_reported(folder) and runs_started(server, "k")) and proc.poll() is None:
        assert time.time() < deadline, (tmp_path / "run.log").read_text()[-3000:]
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {t: r.info.run_id for t, r in runs_of(server, "k").items()}
    assert before  # the first trial logged its run before the kill

    out = search_cli("resume", "--study", "k", "--root", str(tmp_path), env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    trials = read_study_table(folder / "trials.csv")
    runs = runs_of(server, "k")
    assert set(runs) == set(trials["trial_id"]) and len(runs) == 3  # a set-aside trial's run is deleted
    for trial_id, run_id in before.items():
        if trial_id in runs:  # continued, not started again: the same run
            assert runs[trial_id].info.run_id == run_id
    for row in trials.itertuples():  # the driver sets what a pruned trial cannot say itself
        run = runs[row.trial_id]
        assert (run.info.status, run.data.tags["status"]) == (RUN_STATUS[row.status], row.status)
    # Each epoch once. An epoch a killed trial had logged and its resume trained again keeps the values first
    # logged (its seconds differ from history.csv's), so only the steps are compared here, and the final scores.
    check_curves(server, runs, read_study_table(folder / "history.csv"), keys=())
    for row in trials[trials["status"] == "COMPLETE"].itertuples():
        assert runs[row.trial_id].data.metrics["test_mse"] == pytest.approx(row.test_mse)


def test_a_server_that_does_not_answer_is_refused_before_anything_is_written(
    tmp_path: Path, tiny_space: Path
) -> None:
    root = tmp_path / "root"
    started = time.time()
    proc = in_process(main, "run", "--space", str(tiny_space), "--study", "x", "--root", str(root), *SWEEP,
                      "--mlflow", f"http://127.0.0.1:{free_port()}")
    assert_user_error(proc, "MLflow server", "does not answer", "--mlflow")
    assert time.time() - started < 60  # asked once, not retried for minutes
    assert not root.exists()
    proc = in_process(main, "run", "--space", str(tiny_space), "--study", "x", "--root", str(root),
                      "--mlflow", "file:///tmp/mlruns")
    assert_user_error(proc, "not an MLflow tracking server", "http://HOST:PORT")
    proc = in_process(main, "run", "--space", str(tiny_space), "--study", "x", "--root", str(root),
                      "--engine", "keras-tuner", "--mlflow", "http://127.0.0.1:9")
    assert_user_error(proc, "keras-tuner", "--no-mlflow")
    assert not root.exists()


def test_secrets_in_a_uri_are_masked() -> None:
    from search.mlflow_log import masked

    assert masked("https://ann:s3cret@mlflow.example:443/x?token=abc&a=1") == \
        "https://ann:***@mlflow.example:443/x?token=***&a=1"
    assert masked("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_a_trial_sends_from_a_thread_of_its_own_and_its_end_waits_for_everything(server: str, tmp_path: Path) -> None:
    """A trial's epochs return at once (its thread sends them, in order); ``flush`` (before each report) returns
    once they are sent; the last epoch goes with the final scores; ``finish`` returns once all of it is on the
    server (the model too), the environment as it was."""
    import threading
    from types import SimpleNamespace

    from search.mlflow_log import MlflowTarget, open_experiment, trial_run

    environment = dict(os.environ)
    target = open_experiment(MlflowTarget(uri=server, study="threaded"), "sid-threaded")
    run = trial_run(target, "t1", {"lr": 1e-3, "filters": "8-16"}, "8-16 k3 z4", epochs=3)
    assert run is not None
    history = [{"epoch": e, "loss": 0.3 / e, "mse": 0.3 / e, "val_loss": 0.4 / e, "val_mse": 0.4 / e,
                "seconds": 1.0} for e in (1, 2, 3)]
    opened, gate = threading.Event(), threading.Event()
    run._send("held", lambda: (opened.set(), gate.wait()))  # the run's thread opens the run, then waits here
    for epoch in (1, 2, 3):
        state = SimpleNamespace(epoch=epoch, progress=SimpleNamespace(history=history[:epoch]),
                                model=SimpleNamespace(stop_training=False))
        run(state)  # returns although nothing can be sent while the thread is held
    assert opened.wait(60)
    run_id = mlflow.MlflowClient(server).search_runs([target.experiment_id])[0].info.run_id
    assert steps(server, run_id, "epoch") == []  # by construction: the thread is still held
    gate.set()
    run.flush()  # as a trial does before each report: what it asked so far is on the server
    assert steps(server, run_id, "epoch") == [(1, 1.0), (2, 2.0)]  # the last epoch goes with the end
    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    final = {**history[-1], "epochs": 3, "best_epoch": 3, "test_mse": 0.2, "kept_val_mse": 0.13}
    run.finish(final, model, history=history)
    logged = mlflow.MlflowClient(server).get_run(run_id)
    assert steps(server, run_id, "epoch") == [(1, 1.0), (2, 2.0), (3, 3.0)]  # each once
    assert logged.info.status == "FINISHED" and logged.data.metrics["test_mse"] == 0.2
    assert [a.path for a in mlflow.MlflowClient(server).list_artifacts(run_id, "model")] == ["model/model.keras"]
    assert dict(os.environ) == environment  # the run's settings are its client's, never the process's
    assert run._sender is None  # its thread is gone


def test_a_whole_trial_logs_without_importing_mlflow(server: str, tmp_path: Path) -> None:
    """The driver's calls and a trial's run, start to end with its model, in a fresh process against a real
    loopback server: MLflow's package is never imported there (0.6-1 s of CPU per process when it is)."""
    code = """if True:
        import sys
        from pathlib import Path
        from types import SimpleNamespace
        from search.mlflow_log import MlflowTarget, check, open_experiment, trial_run
        uri, model = sys.argv[1], Path(sys.argv[2])
        check(uri, "fresh")
        run = trial_run(open_experiment(MlflowTarget(uri=uri, study="fresh"), "sid"), "t1", {"lr": 0.001},
                        "8-16 k3 z4", epochs=2)
        run.start()
        history = [{"epoch": 1, "loss": 0.5, "val_mse": 0.4, "seconds": 1.0},
                   {"epoch": 2, "loss": 0.3, "val_mse": 0.3, "seconds": 1.0}]
        run(SimpleNamespace(epoch=1, progress=SimpleNamespace(history=history[:1]),
                            model=SimpleNamespace(stop_training=False)))
        run.flush()
        run.finish({**history[-1], "epochs": 2, "best_epoch": 2, "test_mse": 0.25}, model, history=history)
        print(run.run_id, sorted(m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")))
    """
    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    proc = subprocess.run([sys.executable, "-c", code, server, str(model)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_id, imported = proc.stdout.split(" ", 1)
    assert imported.strip() == "[]"
    client = mlflow.MlflowClient(server)
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED" and logged.data.metrics["test_mse"] == 0.25
    assert sorted(int(m.step) for m in client.get_metric_history(run_id, "epoch")) == [1, 2]
    assert logged.data.params == {"lr": "0.001"}
    assert [a.path for a in client.list_artifacts(run_id, "model")] == ["model/model.keras"]
