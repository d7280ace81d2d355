"""`magicpose evaluate --tiktok ROOT`: the TikTok protocol in one command on a puppet tree written in the
TikTok layout, with the embedded model: generated once, scored, resumable, and shared by two CPU
processes (torchrun, gloo) frame for frame as one process makes it. 3 videos x 4 frames at 64x64, 3 steps."""

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from magicpose.data.puppet.tiktok_export import export_tiktok_split
from magicpose.data.puppet.world import PuppetVideo, video_spec
from magicpose.data.tiktok import TikTokDataset
from magicpose.interfaces.cli import main
from magicpose.media import read_image, write_image
from magicpose.pipelines import assembly
from tests.processes import torchrun

FAST = ["--steps", "3", "--device", "cpu"]
VIDEOS = [video_spec("test", index).video_id for index in range(3)]
NAMES = ["0001.png", "0002.png", "0003.png", "0004.png"]
# Measured on this tree: disco PSNR 28.4 dB (its uint8 differences wrap around: a frame against another video's
# scores 27.9), clean PSNR 16.9 dB, where a frame scores 11.9 against another video and 14.0 against flat grey.
DISCO_PSNR_FLOOR, CLEAN_PSNR_FLOOR = 26.0, 15.0


def _evaluate(tree: Path, out: Path, *extra) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process runs (OMP_NUM_THREADS=1): the same arithmetic
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["evaluate", "--tiktok", str(tree), "--out", str(out), *FAST, *extra])
    finally:
        torch.set_num_threads(threads)
    return code, stdout.getvalue(), stderr.getvalue()


def _report(path: Path) -> dict:
    report = json.loads(path.read_text())
    return {**report, "statuses": {entry["video"]: entry["status"] for entry in report["generation"]}}


def _frames(folder: Path) -> dict[str, np.ndarray]:
    return {f"{video}/{name}": read_image(folder / video / name) for video in VIDEOS for name in NAMES}


def _stamps(folder: Path) -> dict:
    return {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in sorted(folder.glob("*/*.png"))}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiktok") / "puppets"
    export_tiktok_split(root, "test", 3, width=64, height=64, num_frames=4, progress=False)
    return root


@pytest.fixture(scope="module")
def single(tree) -> tuple[Path, str, dict, dict]:
    """One process over the whole tree: its folder, output, report and frames (later tests rewrite the folder)."""
    out = tree.parent / "one"
    code, stdout, stderr = _evaluate(tree, out)
    assert code == 0, stderr[-3000:]
    return out, stdout, _report(out / "metrics.json"), _frames(out)


def test_the_puppet_world_writes_the_tiktok_layout(tree):
    dataset = TikTokDataset(tree, "test")
    assert [video.video_id for video in dataset] == VIDEOS
    assert [path.name for path in dataset[0].frame_files] == NAMES
    puppet, sample = PuppetVideo(video_spec("test", 1, width=64, height=64, num_frames=4)), dataset[1].sample(2)
    assert np.array_equal(sample.image, puppet.frame(2).image)
    assert np.array_equal(sample.pose_map, puppet.frame(2).condition())  # the rendered OpenPose condition
    assert not [path for path in tree.rglob(".*")]  # no temporary left


def test_data_prepare_puppet_writes_the_tiktok_layout_too(tmp_path, capsys):
    out = tmp_path / "tree"
    arguments = ["data", "prepare", "puppet", str(out), "--layout", "tiktok", "--split", "val", "--videos", "2"]
    assert main([*arguments, "--frames", "2", "--size", "32"]) == 0
    dataset = TikTokDataset(out, "val")
    assert [video.video_id for video in dataset] == [video_spec("val", index).video_id for index in range(2)]
    assert [video.num_frames for video in dataset] == [2, 2] and (dataset[0].width, dataset[0].height) == (32, 32)
    assert not (out / "test_set").exists() and "2 puppet videos (val)" in capsys.readouterr().out


def test_one_process_generates_every_video_and_scores_it(tree, single):
    out, stdout, report, _ = single
    assert report["statuses"] == dict.fromkeys(VIDEOS, "done") and report["counts"]["done"] == 3
    assert [entry["process"] for entry in report["generation"]] == [0, 0, 0]
    assert all(entry["frames"] == 4 and entry["size"] == "64x64" for entry in report["generation"])
    assert sorted(path.name for path in (out / VIDEOS[0]).iterdir()) == [*NAMES, "generation.json"]
    record = report["generation"][0]["record"]
    assert record["reference"] == "0001.png" and record["seed"] == 42 and record["motion_module"] is True
    # the embedded model's own recipe with the command line's steps in its place
    assert (
        report["recipe"] == {**record["recipe"], "num_inference_steps": 3} and report["recipe"]["guidance_scale"] == 3
    )
    assert report["options"]["sampling"] == {"num_inference_steps": 3} and report["processes"] == 1
    pooled = report["pooled"]
    assert report["protocol"] == "disco" and report["metrics"] == [
        "ssim",
        "psnr",
        "l1",
    ]  # no weights: the rest skipped
    assert pooled["frames"] == 12 and pooled["videos"] == 3
    assert np.isfinite(pooled["psnr"]) and pooled["psnr"] > DISCO_PSNR_FLOOR
    assert 0 < pooled["ssim"] <= 1 and 0 < pooled["l1"] < 1
    assert set(report["videos"]) == set(VIDEOS) and report["videos"][VIDEOS[0]]["frame_indices"] == [1, 2, 3, 4]
    assert "3 videos: 3 generated, 0 skipped, 0 failed" in stdout and f"PSNR {pooled['psnr']:.4g}" in stdout
    assert "ALL (3 videos)" in stdout
    generated, truth = read_image(out / VIDEOS[0] / "0002.png"), read_image(tree / "test_set" / VIDEOS[0] / "0002.png")
    assert generated.shape == truth.shape and not np.array_equal(generated, truth)


def test_a_rerun_skips_every_video_and_rescores_and_force_regenerates(tree, single, monkeypatch):
    out, _, first, frames = single
    stamps = _stamps(out)
    (out / "metrics.json").unlink()
    loads = []
    monkeypatch.setattr(assembly, "load", lambda *a, **k: loads.append(1) or pytest.fail("loaded the model"))
    code, stdout, _ = _evaluate(tree, out)
    assert code == 0 and not loads and _stamps(out) == stamps  # nothing generated, nothing rewritten
    again = _report(out / "metrics.json")
    assert again["statuses"] == dict.fromkeys(VIDEOS, "skipped") and again["pooled"] == first["pooled"]
    assert "3 videos: 0 generated, 3 skipped" in stdout
    assert again["recipe"] == first["recipe"]  # read back from each video's generation.json
    code, stdout, _ = _evaluate(tree, out, "--protocol", "clean", "--json", str(out.parent / "clean.json"))
    clean = _report(out.parent / "clean.json")
    assert code == 0 and clean["protocol"] == "clean" and _stamps(out) == stamps
    assert CLEAN_PSNR_FLOOR < clean["pooled"]["psnr"] < first["pooled"]["psnr"]  # no wrap-around
    assert 0 < clean["pooled"]["ssim"] <= 1 and "(clean): SSIM" in stdout

    monkeypatch.undo()
    code, stdout, _ = _evaluate(tree, out, "--force", "--videos", "2")
    assert code == 0 and "2 videos: 2 generated, 0 skipped" in stdout
    redone = _stamps(out)
    assert all(redone[path] != stamps[path] for path in redone if path.parent.name in VIDEOS[:2])
    assert all(redone[path] == stamps[path] for path in redone if path.parent.name == VIDEOS[2])
    assert all(np.array_equal(frame, frames[key]) for key, frame in _frames(out).items())  # seeded per video


def test_an_interrupted_run_resumes_with_the_missing_video_only(tree, single):
    out = tree.parent / "resumed"
    shutil.copytree(single[0], out)
    shutil.rmtree(out / VIDEOS[1])  # never finished
    (out / f".{VIDEOS[2]}.crashed").mkdir()  # a temporary folder a killed run left: not a video
    code, stdout, _ = _evaluate(tree, out)
    assert code == 0
    report = _report(out / "metrics.json")
    assert report["statuses"] == {VIDEOS[0]: "skipped", VIDEOS[1]: "done", VIDEOS[2]: "skipped"}
    assert report["pooled"] == single[2]["pooled"]
    assert all(np.array_equal(frame, single[3][key]) for key, frame in _frames(out).items())


def test_a_bad_video_is_reported_and_the_others_are_scored(tree, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tree, bad)
    pose_map = bad / "pose_map_test_set" / VIDEOS[1] / "0003.png"
    write_image(pose_map, np.zeros((32, 32, 3), np.uint8))  # not the frame's size
    code, stdout, stderr = _evaluate(bad, tmp_path / "gen", "--max-frames", "3")
    assert code == 1
    report = _report(tmp_path / "gen" / "metrics.json")
    assert report["statuses"] == {VIDEOS[0]: "done", VIDEOS[1]: "failed", VIDEOS[2]: "done"}
    assert "0003.png is 32x32 but its frame is 64x64" in report["generation"][1]["message"]
    assert f"video {VIDEOS[1]} failed" in stderr and not (tmp_path / "gen" / VIDEOS[1]).exists()
    assert set(report["videos"]) == {VIDEOS[0], VIDEOS[2]} and report["pooled"]["frames"] == 6
    assert "3 videos: 2 generated, 0 skipped, 1 failed" in stdout


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--tiktok", "{tmp}/nowhere", "--out", "{tmp}/gen"], "the TikTok root {tmp}/nowhere is not a folder"),
        (["--tiktok", "{tree}", "--subset", "val", "--out", "{tmp}/gen"], "has no val_set/ with pose_map_val_set/"),
        (["--tiktok", "{tree}", "--out", "{tree}/test_set/gen"], "lies inside the dataset"),
        (["--tiktok", "{tree}"], "--tiktok needs --out"),
        (["--tiktok", "{tree}", "--out", "{tmp}/gen", "--puppet"], "--tiktok and --puppet are different"),
        (["--tiktok", "{tree}", "--out", "{tmp}/gen", "--max-frames", "0"], "--max-frames must be at least 1"),
    ],
)
def test_bad_input_stops_before_loading_the_model(tree, tmp_path, monkeypatch, capsys, arguments, message):
    monkeypatch.setattr(assembly, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    fill = {"tmp": str(tmp_path), "tree": str(tree)}
    assert main(["evaluate", *(argument.format(**fill) for argument in arguments), *FAST]) == 2
    assert message.format(**fill) in capsys.readouterr().err
    assert not (tmp_path / "gen").exists()


def test_evaluate_names_the_evaluators_metrics_without_importing_it():
    from magicpose.evaluation import evaluator
    from magicpose.interfaces.commands import evaluate

    assert evaluate.METRICS == evaluator.METRICS and evaluate.DEFAULT_METRICS == evaluator.DEFAULT_METRICS


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="needs torch.distributed (gloo)")
def test_two_processes_share_the_videos_each_once_and_match_one_process(tree, single):
    out = tree.parent / "two"
    result = torchrun("-m", "magicpose.interfaces.cli", "evaluate", "--tiktok", str(tree), "--out", str(out), *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 videos: 3 generated, 0 skipped, 0 failed" in result.stdout
    report = _report(out / "metrics.json")
    assert report["processes"] == 2 and report["statuses"] == dict.fromkeys(VIDEOS, "done")
    # process i: videos i, i+2; each video generated once, by one process
    assert [entry["process"] for entry in report["generation"]] == [0, 1, 0]
    parts = [json.loads((out / f"metrics.json.rank{rank}.json").read_text()) for rank in range(2)]
    assert [[entry["video"] for entry in part["videos"]] for part in parts] == [[VIDEOS[0], VIDEOS[2]], [VIDEOS[1]]]
    one, two = single[3], _frames(out)
    assert all(np.array_equal(two[key], one[key]) for key in one)  # frame for frame
    assert report["pooled"] == single[2]["pooled"]
    assert not [path for path in out.iterdir() if path.name.startswith(".")]  # no temporary left


def test_a_bug_in_a_video_raises_under_debug(tree, tmp_path, monkeypatch):
    """The same runner as `animate --jobs`: a bug is a failed row, or with --debug keeps its traceback."""
    from magicpose.workflows import tiktok_protocol

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(tiktok_protocol, "generate_clip", broken)
    monkeypatch.delenv("MAGICPOSE_DEBUG", raising=False)
    code, _, stderr = _evaluate(tree, tmp_path / "gen", "--videos", "1", "--metrics", "psnr")
    assert code == 1 and f"video {VIDEOS[0]} failed: ZeroDivisionError: a bug" in stderr
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "evaluate", "--tiktok", str(tree), "--out", str(tmp_path / "gen"), *FAST, "--videos", "1"])
