"""``python -m analysis.report`` end to end: the files it writes, the edge cases, and bad input."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from analysis.images import best_model_grid
from results import COMPLETE, FAILED, PRUNED, RUNNING, load_study, study_paths
from tests.analysis.built_studies import BEST_MODEL, Ran, StudyFactory, curve, run_report, trial
from tests.conftest import read_study_table

PLOTS = [
    "learning_curves", "intermediate_values", "metric_vs_hyperparameters", "parallel_coordinates", "contour",
    "optimization_history", "importance", "pareto", "image_grid",
]
REPO = Path(__file__).resolve().parents[2]


def pngs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png"))


def test_writes_the_report_files_and_every_plot(realistic_report: Ran) -> None:
    assert realistic_report.code == 0, realistic_report.err
    files = sorted(p.name for p in realistic_report.folder.iterdir())
    assert files == sorted(["report.md", "report.html", "leaderboard.csv", *(f"{p}.png" for p in PLOTS)])


def test_png_files_are_valid_images(realistic_report: Ran) -> None:
    for name in pngs(realistic_report.folder):
        with Image.open(realistic_report.folder / name) as image:
            image.verify()
        with Image.open(realistic_report.folder / name) as image:
            assert image.format == "PNG" and min(image.size) > 200, name


def test_leaderboard_csv_is_the_top_of_the_trial_table(realistic_report: Ran, study_root: Path) -> None:
    board = pd.read_csv(realistic_report.folder / "leaderboard.csv")
    raw = read_study_table(study_root / "realistic" / "trials.csv")
    top = raw[raw["status"] == COMPLETE].sort_values("val_mse").head(10)
    assert board["trial_id"].tolist() == top["trial_id"].tolist()
    assert board["rank"].tolist() == list(range(1, 11))
    for column in ("val_mse", "test_mse", "test_psnr", "test_ssim", "skill", "params", "lr", "train_seconds"):
        assert board[column].tolist() == pytest.approx(top[column].tolist()), column
    assert board["trial_id"][0] == BEST_MODEL


def test_html_holds_the_leaderboard_and_every_plot(realistic_report: Ran) -> None:
    page = (realistic_report.folder / "report.html").read_text()
    for name in pngs(realistic_report.folder):
        data = base64.b64encode((realistic_report.folder / name).read_bytes()).decode()
        assert f"data:image/png;base64,{data}" in page, name
    assert page.count("<img ") == len(PLOTS)
    board = pd.read_csv(realistic_report.folder / "leaderboard.csv")
    positions = [page.index(f"<td class=\"text\">{t}</td>") for t in board["trial_id"]]
    assert positions == sorted(positions)  # ranked order
    assert "<img src=x" not in page and "ValueError: &lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script" not in page and 'src="http' not in page


def test_markdown_links_every_plot_and_terminal_prints_the_leaderboard(realistic_report: Ran) -> None:
    text = (realistic_report.folder / "report.md").read_text()
    assert "**Mean val MSE (n) by filters x kernel size; 3 pruned trials not in these means (MSE on pixel" in text
    for name in pngs(realistic_report.folder):
        assert f"]({name})" in text
    out = realistic_report.out
    assert "--- Leaderboard" in out and "report written to" in out
    assert [line.split()[:2] for line in out.splitlines() if line.strip().startswith("1 ")][0] == ["1", BEST_MODEL]
    assert "20 trials: 14 complete, 3 pruned, 2 failed, 1 still running or pending." in out
    assert "The study is running: this report covers the trials that had ended." in out


def test_image_grid_of_the_best_model(study_root: Path) -> None:
    study = load_study(study_paths("realistic", study_root))
    board = pd.DataFrame([{"trial_id": "t03", "rank": 1, "architecture": "x"},
                          {"trial_id": BEST_MODEL, "rank": 2, "architecture": "8-16 k3 z16"}])
    grid, note = best_model_grid(study.paths, study.meta, board, study.trials, n=2)
    assert grid is not None and grid.trial_id == BEST_MODEL and grid.rank == 2
    assert note == "Trial #1 has no saved model; the grid shows #2, the best that has one."
    for images in (grid.inputs, grid.predictions, grid.truths):
        assert images.shape == (2, 32, 32, 3) and images.min() >= 0 and images.max() <= 1
    assert (grid.inputs == grid.truths).all()  # reconstruction: the input is the ground truth


def test_image_grid_is_omitted_with_a_note_without_a_model(make_study: StudyFactory, tmp_path: Path) -> None:
    root = make_study("nomodel", [trial(i, COMPLETE, val_mse=0.01 * (i + 1)) for i in range(2)])
    ran = run_report(["--study", "nomodel", "--root", str(root)], root / "nomodel" / "report")
    assert ran.code == 0 and "image_grid.png" not in pngs(ran.folder)
    assert "The image grid is omitted: none of the 2 leaderboard trials has a saved model" in (
        ran.folder / "report.md"
    ).read_text()


def test_every_trial_failed(make_study: StudyFactory) -> None:
    rows = [trial(i, FAILED, error="DivergedError: loss became nan" if i else "OOM") for i in range(3)]
    root = make_study("failed", rows)
    ran = run_report(["--study", "failed", "--root", str(root)], root / "failed" / "report")
    assert ran.code == 0, ran.err
    assert pd.read_csv(ran.folder / "leaderboard.csv").empty
    assert "3 trials: 3 failed." in ran.out
    assert 'Most common reason for failed trials: "DivergedError: loss became nan" (2 of 3).' in ran.out
    assert "No finished trial reports a val MSE, so nothing is ranked." in ran.out
    assert pngs(ran.folder) == []
    assert "The image grid is omitted: no trial has finished yet." in (ran.folder / "report.html").read_text()


def test_a_single_trial(make_study: StudyFactory) -> None:
    root = make_study("one", [trial(0, COMPLETE, val_mse=0.01)], curve("t00", 0.01, 3))
    ran = run_report(["--study", "one", "--root", str(root), "--no-images"], root / "one" / "report")
    assert ran.code == 0, ran.err
    assert pd.read_csv(ran.folder / "leaderboard.csv")["trial_id"].tolist() == ["t00"]
    assert pngs(ran.folder) == [
        "intermediate_values.png", "learning_curves.png", "optimization_history.png", "pareto.png"
    ]
    text = (ran.folder / "report.md").read_text()
    assert "Importance cannot be estimated from 1 finished trial (needs at least 4)." in text
    assert "No hyperparameter varied among the finished trials" in text


def test_a_metric_missing_from_some_trials(make_study: StudyFactory) -> None:
    rows = [trial(i, COMPLETE, val_mse=0.01 + i / 1000, kernel_size=(3, 5)[i % 2], latent_dim=16 * (i + 1))
            for i in range(6)]
    rows[3]["val_mse"] = None
    for row in rows[:2]:
        row.update(test_mse=None, skill=None)
    root = make_study("gaps", rows)
    ran = run_report(["--study", "gaps", "--root", str(root), "--no-images"], root / "gaps" / "report")
    assert ran.code == 0, ran.err
    board = pd.read_csv(ran.folder / "leaderboard.csv")
    assert board["trial_id"].tolist() == ["t00", "t01", "t02", "t04", "t05"]
    assert "1 complete trial reports no val MSE: counted, not ranked." in ran.out
    assert "Best trial t00 (32-48-64 k3 z16): val MSE 0.01; it has no test scores" in ran.out
    assert "3 of 3 finished trials beat the trivial baseline (skill > 0)." in ran.out
    assert "uncertain with only 5 trials" in ran.out
    ranked = run_report(["--study", "gaps", "--root", str(root), "--metric", "test_mse", "--no-images"], ran.folder)
    assert pd.read_csv(ran.folder / "leaderboard.csv")["trial_id"].tolist() == ["t02", "t03", "t04", "t05"]
    assert ranked.code == 0


def test_rank_by_a_higher_is_better_metric(study_root: Path, tmp_path: Path) -> None:
    ran = run_report(["--study", "realistic", "--root", str(study_root), "--metric", "test_psnr", "--top", "3",
                      "--out", str(tmp_path), "--no-images"], tmp_path)
    assert ran.code == 0
    raw = read_study_table(study_root / "realistic" / "trials.csv")
    expected = raw.sort_values("test_psnr", ascending=False)["trial_id"].head(3).tolist()
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert board["trial_id"].tolist() == expected
    assert "ranked by test PSNR (dB), higher is better" in ran.out
    # Ranking on the held-out split is said at the top of the terminal output and of the report, and on the top row.
    caution = ("Caution: ranked by a test metric: test PSNR (dB) is measured on the held-out test split, so "
               "choosing the best by it makes the top scores optimistic")
    assert ran.out.splitlines()[1].startswith(caution)
    markdown = (tmp_path / "report.md").read_text()
    assert markdown.index(caution) < markdown.index("## Findings")
    assert board["selection"][0].endswith("by test_psnr, one training seed each; selected on the test split, so "
                                          "its test score is optimistic")
    by_val = run_report(["--study", "realistic", "--root", str(study_root), "--top", "3", "--out", str(tmp_path),
                         "--no-images"], tmp_path)
    assert "ranked by a test metric" not in by_val.out


def test_html_in_parameter_values_is_escaped(make_study: StudyFactory) -> None:
    evil = "<script>alert(1)</script>"
    rows = [trial(i, COMPLETE, val_mse=0.01 * (i + 1), activation=evil if i % 2 else "relu") for i in range(4)]
    rows.append(trial(4, FAILED, error=f"ValueError: {evil}"))
    root = make_study("evil", rows, params=["activation"], roles={"activation": "scientific"})
    ran = run_report(["--study", "evil", "--root", str(root), "--no-images"], root / "evil" / "report")
    assert ran.code == 0, ran.err
    escaped = {"report.html": "&lt;script&gt;alert(1)&lt;/script&gt;", "report.md": "&lt;script>alert(1)&lt;/script>"}
    for name, shown in escaped.items():
        text = (ran.folder / name).read_text()
        assert evil not in text and shown in text, name  # no tag can open in either
    assert pd.read_csv(ran.folder / "leaderboard.csv")["activation"].tolist()[:2] == ["relu", evil]


def test_a_running_study_reports_what_has_ended(make_study: StudyFactory) -> None:
    rows = [trial(0, COMPLETE, val_mse=0.02), trial(1, PRUNED, error="pruned"), trial(2, RUNNING), trial(3, RUNNING)]
    root = make_study("live", rows, status="running")
    ran = run_report(["--study", "live", "--root", str(root), "--no-images"], root / "live" / "report")
    assert ran.code == 0, ran.err
    assert "4 trials: 1 complete, 1 pruned, 2 still running or pending." in ran.out
    assert "The study is running" in ran.out


def test_several_studies_side_by_side(make_study: StudyFactory) -> None:
    for task, scale in (("colorize-yuv", 1.0), ("colorize-lab", 1.5)):
        rows = [trial(i, COMPLETE, val_mse=scale * 0.01 * (i + 1), task=task, kernel_size=(3, 5)[i % 2])
                for i in range(4)]
        root = make_study(task.split("-")[1], [*rows, trial(4, FAILED, error="boom")], task=task)
    ran = run_report(["--study", "lab", "--study", "yuv", "--root", str(root), "--no-images"], root)
    assert ran.code == 0, ran.err
    folder = root / "lab" / "report" / "compare-lab-yuv"
    assert "comparison.png" in pngs(folder) and "lab-pareto.png" in pngs(folder) and "yuv-pareto.png" in pngs(folder)
    board = pd.read_csv(folder / "leaderboard.csv")
    assert board.groupby("study").size().to_dict() == {"lab": 4, "yuv": 4}
    assert "Best val MSE by study: yuv 0.01 (best of 4 finished trials), lab 0.015 (best of 4 finished trials) " \
        "(best first; compare skill when the tasks differ)." in ran.out
    assert "A study with fewer than 10 finished trials makes this ranking uncertain." in ran.out
    assert "| lab | ray | colorize-lab | done | 5 | 4 | 0 | 1 | 0.015 |" in (folder / "report.md").read_text()
    assert "Study lab" in ran.out and "Study yuv" in ran.out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--study", "nope"], "study 'nope' does not exist under"),
        (["--study", "empty"], "study 'empty' has no trials yet"),
        (["--study", "ok", "--metric", "accuracy"], "unknown metric 'accuracy'; use one of val_mse"),
        (["--study", "ok", "--out", "{file}/sub"], "cannot write the report to"),
        (["--study", "ok", "--top", "0"], "--top 0 must be at least 1"),
        (["--study", "ok", "--study", "ok"], "names a study twice"),
        (["--study", "../etc"], "study name '../etc' is not allowed"),
        ([], "the following arguments are required: --study"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(make_study: StudyFactory, tmp_path: Path, argv: list[str],
                                               message: str) -> None:
    root = make_study("ok", [trial(0, COMPLETE, val_mse=0.01)])
    make_study("empty", [])
    (tmp_path / "file").write_text("not a folder")
    argv = [a.replace("{file}", str(tmp_path / "file")) for a in argv]
    ran = run_report([*argv, "--root", str(root)], tmp_path)
    assert ran.code == 2
    assert ran.err.count("\n") == 1 and ran.err.startswith("error: ") and message in ran.err, ran.err


def test_the_module_runs_from_the_command_line(tmp_path: Path) -> None:
    # The one real `python -m analysis.report` of the bad-input tests (the others run it in this process): the
    # module form itself turns a user error into one line and exit code 2.
    result = subprocess.run(
        [sys.executable, "-m", "analysis.report", "--study", "missing", "--root", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and result.stderr.startswith("error: study 'missing' does not exist")
    assert result.stderr.count("\n") == 1


@pytest.mark.slow
def test_report_on_real_sweep(tmp_path: Path) -> None:
    """A tiny real sweep (the `quick` space, 3 samples, 1 epoch on 64 images per split), then its report."""
    sweep = subprocess.run(
        [sys.executable, "-m", "search", "run", "--space", "quick", "--samples", "3", "--max-epochs", "1",
         "--limit", "64", "--concurrency", "1", "--study", "real", "--root", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    report = subprocess.run(
        [sys.executable, "-m", "analysis.report", "--study", "real", "--root", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    folder = tmp_path / "real" / "report"
    raw = read_study_table(tmp_path / "real" / "trials.csv")
    board = pd.read_csv(folder / "leaderboard.csv")
    done = raw[raw["status"] == COMPLETE].dropna(subset=["val_mse"]).sort_values("val_mse", kind="stable")
    assert board["trial_id"].astype(str).tolist() == done["trial_id"].astype(str).head(10).tolist()
    page = (folder / "report.html").read_text()
    for name in pngs(folder):
        with Image.open(folder / name) as image:
            image.verify()
        assert base64.b64encode((folder / name).read_bytes()).decode() in page
    assert "--- Leaderboard" in report.stdout


# --- a report never writes through a link, and is replaced whole ---------------------------------------------


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (links as where they point)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if not p.is_symlink() else f"-> {p.readlink()}".encode())
            for p in sorted(folder.rglob("*")) if p.is_file() or p.is_symlink()}


@pytest.fixture
def small_study(make_study: StudyFactory) -> Path:
    rows = [trial(i, COMPLETE, val_mse=0.01 * (i + 1), kernel_size=(3, 5)[i % 2]) for i in range(4)]
    return make_study("small", rows)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder outside every study, with a file of someone else's in it."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "report.html").write_text("someone else's page\n")
    return folder


def one_line(ran: Ran, *words: str) -> None:
    assert ran.code == 2 and len(ran.err.strip().splitlines()) == 1 and ran.err.startswith("error: "), ran.err
    for word in words:
        assert word in ran.err, ran.err


def test_a_report_folder_that_links_out_of_the_study_is_refused(small_study: Path, elsewhere: Path) -> None:
    report = small_study / "small" / "report"
    report.symlink_to(elsewhere)
    before = _tree(elsewhere)
    ran = run_report(["--study", "small", "--root", str(small_study), "--no-images"], report)
    one_line(ran, f"{report} is a link (to {elsewhere})")
    assert _tree(elsewhere) == before and ran.out == ""


def test_report_files_that_are_links_are_replaced_not_written_through(small_study: Path, elsewhere: Path) -> None:
    report = small_study / "small" / "report"
    report.mkdir()
    for name in ("report.html", "report.md", "leaderboard.csv"):
        (report / name).symlink_to(elsewhere / "report.html")
    before = _tree(elsewhere)
    ran = run_report(["--study", "small", "--root", str(small_study), "--no-images"], report)
    assert ran.code == 0, ran.err
    assert _tree(elsewhere) == before
    for name in ("report.html", "report.md", "leaderboard.csv"):
        assert not (report / name).is_symlink() and (report / name).stat().st_size > 0, name
    assert "<!DOCTYPE html>" in (report / "report.html").read_text()


def test_an_out_that_is_a_link_or_runs_through_a_link_in_a_study_is_refused(
    small_study: Path, elsewhere: Path, tmp_path: Path
) -> None:
    linked = tmp_path / "linked-out"
    linked.symlink_to(elsewhere)
    (small_study / "small" / "report").symlink_to(elsewhere)
    before = _tree(elsewhere)
    for out, link in ((linked, linked), (small_study / "small" / "report" / "sub", small_study / "small" / "report")):
        ran = run_report(["--study", "small", "--root", str(small_study), "--no-images", "--out", str(out)], out)
        one_line(ran, f"{link} is a link")
    assert _tree(elsewhere) == before


def test_a_full_disk_leaves_the_previous_report_whole(small_study: Path) -> None:
    """The file-size limit (RLIMIT_FSIZE) stands in for a full disk: a write past 64 KiB fails (EFBIG) as one
    past the disk's end does (ENOSPC); report.html, with its plots inside, is larger than that."""
    argv = ["--study", "small", "--root", str(small_study), "--no-images"]
    report = small_study / "small" / "report"
    assert run_report(argv, report).code == 0
    before = _tree(report)
    assert len(before["report.html"]) > 65536

    def small_files() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))  # Python ignores SIGXFSZ: writes raise EFBIG

    proc = subprocess.run([sys.executable, "-m", "analysis.report", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=300, preexec_fn=small_files)
    assert proc.returncode == 2 and proc.stderr.startswith("error: cannot write the report to"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert _tree(report) == before  # every file as it was, and no temporary file left beside them


def test_markdown_links_and_images_in_parameter_values_stay_text(make_study: StudyFactory) -> None:
    from markdown_it import MarkdownIt

    values = ["[click](https://evil.example/x)", "![pixel](https://evil.example/p.png)", "<https://evil.example>"]
    rows = [trial(i, COMPLETE, val_mse=0.01 * (i + 1), activation=values[i % 3]) for i in range(6)]
    root = make_study("links", rows, params=["activation"], roles={"activation": "scientific"})
    ran = run_report(["--study", "links", "--root", str(root), "--no-images"], root / "links" / "report")
    assert ran.code == 0, ran.err
    text = (ran.folder / "report.md").read_text()
    page = MarkdownIt("commonmark").enable("table").render(text)
    assert "evil.example" in page  # the values are in the report, as text:
    assert "href=" not in page and 'src="https://' not in page
    own = [line for line in text.splitlines() if line.startswith("![")]
    assert page.count("<img ") == len(own) == len(pngs(ran.folder))  # only the report's own plots
    assert "https\\://evil.example" in text  # not a bare link on GitHub either
