"""`magicpose animate --jobs`: many jobs, one model load, resumable, a report; and shared by two CPU
processes (torchrun, gloo). On a tiny random model, 1 step at 32x32."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from magicpose.interfaces.cli import main
from magicpose.media import read_video
from magicpose.pipelines import assembly
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
from magicpose.poses.openpose_json import save_poses
from tests.dummy_components import get_dummy_components
from tests.processes import torchrun
from tests.reference_data import reference_path

FAST = ["--steps", "1", "--size", "32"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from magicpose.data.puppet.world import PuppetVideo, video_spec

    root = tmp_path_factory.mktemp("animate_jobs")
    MagicPosePipeline(**get_dummy_components()).save_pretrained(root / "model")
    save_poses(PuppetVideo(video_spec("test", 0, num_frames=2)).poses(), root / "poses.json")
    shutil.copy(reference_path("real_media", "astronaut.png"), root / "photo.png")
    return root


@pytest.fixture
def loads(monkeypatch):
    """Counts model loads."""
    calls, load = [], assembly.load
    monkeypatch.setattr(assembly, "load", lambda *a, **k: calls.append(1) or load(*a, **k))
    return calls


def _jobs(workdir: Path, jobs: Path, *extra):
    return main(["animate", "--jobs", str(jobs), "--model", str(workdir / "model"), *FAST, *extra])


def _report(path: Path) -> dict:
    report = json.loads(path.read_text())
    return {**report, "statuses": [job["status"] for job in report["jobs"]]}


def _stamp(path: Path):
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns, path.read_bytes()


@pytest.mark.slow
def test_yaml_jobs_run_report_a_bad_one_and_resume(workdir, loads, capsys):
    folder = workdir / "yaml"
    folder.mkdir()
    (folder / "jobs.yaml").write_text(
        "- {reference: ../photo.png, driving: ../poses.json, out: a.mp4, seed: 1}\n"
        "- reference: ../photo.png\n  driving: ../poses.json\n  out: b.mp4\n  seed: 2\n  grid: true\n"
        "- {reference: ../missing.png, driving: ../poses.json, out: c.mp4}\n"
    )
    jobs = folder / "jobs.yaml"
    assert _jobs(workdir, jobs) == 1
    assert len(loads) == 1
    out = capsys.readouterr().out
    assert "3 jobs: 2 done, 0 skipped, 1 failed" in out and "missing.png" in out
    report = _report(folder / "jobs_report.json")
    assert report["statuses"] == ["done", "done", "failed"] and report["counts"]["done"] == 2
    assert [job["frames"] for job in report["jobs"]] == [2, 2, None]
    assert report["jobs"][2]["line"] == "line 7" and "missing.png" in report["jobs"][2]["message"]
    assert not (folder / "c.mp4").exists() and (folder / "b_grid.mp4").is_file()
    assert not np.array_equal(read_video(folder / "a.mp4")[0][0], read_video(folder / "b.mp4")[0][0])  # seeds 1, 2

    stamps = {name: _stamp(folder / name) for name in ("a.mp4", "b.mp4", "b_grid.mp4")}
    assert _jobs(workdir, jobs) == 1
    assert _report(folder / "jobs_report.json")["statuses"] == ["skipped", "skipped", "failed"]
    assert {name: _stamp(folder / name) for name in stamps} == stamps  # not rewritten

    (folder / "b_grid.mp4").unlink()  # a --grid job is done only with both files
    assert _jobs(workdir, jobs) == 1
    assert _report(folder / "jobs_report.json")["statuses"] == ["skipped", "done", "failed"]
    assert _stamp(folder / "a.mp4") == stamps["a.mp4"] and (folder / "b_grid.mp4").is_file()

    assert _jobs(workdir, jobs, "--force") == 1
    assert _report(folder / "jobs_report.json")["statuses"] == ["done", "done", "failed"]
    redone = _stamp(folder / "a.mp4")
    assert redone[:2] != stamps["a.mp4"][:2] and redone[2] == stamps["a.mp4"][2]  # rewritten, the same video
    assert "3 jobs: 2 done, 0 skipped, 1 failed" in capsys.readouterr().out


@pytest.mark.slow
def test_csv_jobs_take_their_own_options_over_the_command_line(workdir, loads, capsys):
    folder = workdir / "csv"
    folder.mkdir()
    (folder / "jobs.csv").write_text(
        "reference,driving,out,steps,max-frames,no_align,size\n"
        "../photo.png,../poses.json,one.mp4,,1,,\n"
        "../photo.png,../poses.json,two.mp4,2,,true,\n"
        "../photo.png,../poses.json,bad.mp4,,,,big\n"
    )
    report = folder / "report.json"
    assert _jobs(workdir, folder / "jobs.csv", "--seed", "5", "--report", str(report)) == 1
    assert len(loads) == 1
    jobs = _report(report)["jobs"]
    assert [job["status"] for job in jobs] == ["done", "done", "failed"]
    assert jobs[0]["frames"] == 1 and jobs[0]["message"].endswith("aligned")
    assert jobs[1]["frames"] == 2 and "aligned" not in jobs[1]["message"]
    assert "bad value size = 'big'" in jobs[2]["message"] and jobs[2]["line"] == "line 4"
    # the same as one `animate` with the job's options: the command line's seed, the job's steps
    assert (
        main(
            [
                "animate",
                "--reference",
                str(workdir / "photo.png"),
                "--driving",
                str(workdir / "poses.json"),
                "--out",
                str(folder / "single.mp4"),
                "--model",
                str(workdir / "model"),
                "--size",
                "32",
                "--seed",
                "5",
                "--steps",
                "2",
                "--no-align",
            ]
        )
        == 0
    )
    assert (folder / "single.mp4").read_bytes() == (folder / "two.mp4").read_bytes()
    capsys.readouterr()


@pytest.mark.parametrize(
    "text, message",
    [
        ("- {reference: photo.png, driving: poses.json}\n", "job 1 (line 1): no out"),
        (
            "- {reference: photo.png, driving: poses.json, out: x.mp4}\n"
            "- {reference: photo.png, driving: poses.json, out: x.mp4}\n",
            "job 2 (line 2): the output",
        ),
        (
            "- {reference: photo.png, driving: poses.json, out: x.mp4}\n"
            "- {reference: photo.png, driving: x.mp4, out: y.mp4}\n",
            "is job 2's driving",
        ),
        (
            "- {reference: photo.png, driving: poses.json, out: x.mp4, device: cpu}\n",
            "pass --device on the command line",
        ),
        ("- {reference: photo.png, driving: poses.json, out: x.mp4, stepz: 3}\n", "unknown key 'stepz'"),
        ("reference: photo.png\n", "must hold a list of jobs"),
        ("[", "cannot read the jobs file"),
    ],
)
def test_a_malformed_jobs_file_stops_before_loading_the_model(workdir, monkeypatch, capsys, text, message):
    monkeypatch.setattr(assembly, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    jobs = workdir / "bad.yaml"
    jobs.write_text(text)
    assert _jobs(workdir, jobs) == 2
    assert message in capsys.readouterr().err
    assert not (workdir / "x.mp4").exists() and not (workdir / "bad_report.json").exists()


def test_without_jobs_reference_driving_and_out_are_needed(workdir, capsys):
    assert main(["animate", "--reference", str(workdir / "photo.png"), *FAST]) == 2
    assert "--driving, --out are needed" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="needs torch.distributed (gloo)")
def test_two_processes_share_the_jobs_each_once(workdir):
    folder = workdir / "shared"
    folder.mkdir()
    rows = [f"- {{reference: ../photo.png, driving: ../poses.json, out: v{i}.mp4, seed: {i}}}\n" for i in range(4)]
    (folder / "jobs.yaml").write_text("".join(rows))
    result = torchrun(
        *("-m", "magicpose.interfaces.cli", "animate", "--jobs", str(folder / "jobs.yaml")),
        *("--model", str(workdir / "model"), *FAST, "--no-align", "--device", "cpu"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 jobs: 4 done, 0 skipped, 0 failed" in result.stdout
    parts = [_report(folder / f"jobs_report.json.rank{rank}.json") for rank in range(2)]
    mine = [{job["job"] for job in part["jobs"]} for part in parts]
    assert mine == [{1, 3}, {2, 4}]  # process i: pending jobs i, i+2
    assert all(job["process"] == rank for rank, part in enumerate(parts) for job in part["jobs"])
    merged = _report(folder / "jobs_report.json")
    assert merged["statuses"] == ["done"] * 4 and [job["job"] for job in merged["jobs"]] == [1, 2, 3, 4]
    assert merged["processes"] == 2 and all((folder / f"v{i}.mp4").is_file() for i in range(4))
    assert not [path for path in folder.iterdir() if path.name.startswith(".")]  # no temporary left


@pytest.mark.slow
def test_a_bug_in_a_job_is_a_failed_row_but_raises_under_debug(workdir, monkeypatch, capsys):
    """A bug (an exception no anticipated failure explains) keeps its traceback under --debug or
    MAGICPOSE_DEBUG=1, as the README promises; without them the other jobs go on."""
    from magicpose.interfaces.commands import animate

    folder = workdir / "bug"
    folder.mkdir()
    (folder / "jobs.yaml").write_text("- {reference: ../photo.png, driving: ../poses.json, out: a.mp4}\n")

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(animate, "produce", broken)
    monkeypatch.delenv("MAGICPOSE_DEBUG", raising=False)
    assert _jobs(workdir, folder / "jobs.yaml") == 1
    assert "job 1 (line 1) failed: ZeroDivisionError: a bug" in capsys.readouterr().err
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "animate", "--jobs", str(folder / "jobs.yaml"), "--model", str(workdir / "model"), *FAST])
    monkeypatch.setenv("MAGICPOSE_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        _jobs(workdir, folder / "jobs.yaml")
