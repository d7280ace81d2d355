"""`magicpose animate` end to end on a tiny random model: real photo in, H.264 video out."""

import json

import av
import numpy as np
import pytest

from magicpose.interfaces.cli import main
from magicpose.media import read_video, write_image
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
from magicpose.poses.openpose_json import save_poses
from tests.dummy_components import get_dummy_components
from tests.reference_data import reference_path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from magicpose.data.puppet.world import PuppetVideo, video_spec

    root = tmp_path_factory.mktemp("animate")
    MagicPosePipeline(**get_dummy_components()).save_pretrained(root / "model")
    save_poses(PuppetVideo(video_spec("test", 0, num_frames=2)).poses(), root / "poses.json")
    return root


def _animate(workdir, *extra, reference=None, out="out.mp4"):
    reference = reference or reference_path("real_media", "astronaut.png")
    return main(
        [
            "animate",
            "--reference",
            str(reference),
            "--driving",
            str(workdir / "poses.json"),
            "--out",
            str(workdir / out),
            "--model",
            str(workdir / "model"),
            "--steps",
            "1",
            "--size",
            "32",
            *extra,
        ]
    )


def test_animate_writes_a_playable_video_and_grid_aligned_to_a_real_photo(workdir, capsys):
    assert _animate(workdir, "--grid") == 0
    assert "aligned" in capsys.readouterr().out
    frames, fps = read_video(workdir / "out.mp4")
    assert len(frames) == 2 and frames[0].shape == (32, 32, 3) and fps == pytest.approx(15)
    with av.open(str(workdir / "out.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    grid, _ = read_video(workdir / "out_grid.mp4")
    assert grid[0].shape == (32, 96, 3)


def test_same_seed_same_video(workdir):
    assert _animate(workdir, "--seed", "3", out="a.mp4") == 0
    assert _animate(workdir, "--seed", "3", out="b.mp4") == 0
    assert (workdir / "a.mp4").read_bytes() == (workdir / "b.mp4").read_bytes()


def test_sampling_flags_override_the_model_settings(workdir):
    assert _animate(workdir, out="default.mp4") == 0  # the dummy model's setting: off
    assert _animate(workdir, "--no-start-from-reference", out="off.mp4") == 0
    assert _animate(workdir, "--start-from-reference", out="on.mp4") == 0
    assert (workdir / "default.mp4").read_bytes() == (workdir / "off.mp4").read_bytes()
    assert not np.array_equal(read_video(workdir / "on.mp4")[0][0], read_video(workdir / "off.mp4")[0][0])
    assert _animate(workdir, "--scheduler", "dpm++", "--steps", "2", out="dpm.mp4") == 0
    assert _animate(workdir, "--steps", "2", out="ddim.mp4") == 0
    assert not np.array_equal(read_video(workdir / "dpm.mp4")[0][0], read_video(workdir / "ddim.mp4")[0][0])


def test_reference_without_a_person_warns_and_goes_on_unaligned(workdir, caplog):
    blank = workdir / "blank.png"
    write_image(blank, np.full((64, 64, 3), 200, dtype=np.uint8))
    assert _animate(workdir, reference=blank, out="blank.mp4") == 0
    assert "no person found in the reference photo" in caplog.text
    assert (workdir / "blank.mp4").is_file()


def test_bad_inputs_fail_clearly_and_leave_no_output(workdir, tmp_path, capsys):
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"version": 1.3, "canvas_width": 64, "canvas_height": 64, "people": []}))
    cases = [
        (["--reference", str(tmp_path / "missing.png")], "missing.png"),
        (["--out", str(tmp_path / "no" / "such" / "dir" / "x.mp4")], "does not exist"),
        (["--model", str(tmp_path / "nomodel")], "nomodel"),
        (["--driving", str(tmp_path / "nothing.mp4")], "does not exist"),
        (["--driving", str(empty)], "no person"),
    ]
    for overrides, message in cases:
        args = {
            "--reference": str(reference_path("real_media", "astronaut.png")),
            "--driving": str(workdir / "poses.json"),
            "--out": str(tmp_path / "out.mp4"),
            "--model": str(workdir / "model"),
        }
        args.update(dict(zip(overrides[::2], overrides[1::2])))
        code = main(["animate", *[item for pair in args.items() for item in pair], "--steps", "1", "--size", "32"])
        assert code == 2, overrides
        assert message in capsys.readouterr().err
        assert not (tmp_path / "out.mp4").exists()


def test_the_embedded_model_says_what_it_is_and_a_named_model_does_not(workdir, capsys):
    assert _animate(workdir, out="named.mp4") == 0
    assert "embedded puppet model" not in capsys.readouterr().err
    code = main(
        [
            "animate",
            "--reference",
            str(reference_path("real_media", "astronaut.png")),
            "--driving",
            str(workdir / "poses.json"),
            "--out",
            str(workdir / "embedded.mp4"),
            "--steps",
            "1",
            "--max-frames",
            "1",
        ]
    )
    assert code == 0
    note = capsys.readouterr().err
    assert "embedded puppet model" in note and "magicpose convert" in note and "--model" in note


def test_max_frames_limits_pose_detection_to_those_frames(workdir, monkeypatch):
    from magicpose.data.puppet.world import PuppetVideo, video_spec
    from magicpose.media import write_video
    from magicpose.poses.detect import PoseDetector
    from magicpose.workflows.animation import load_driving_poses

    video = PuppetVideo(video_spec("test", 1, num_frames=12, framing="full"))
    write_video(workdir / "dance.mp4", [video.frame(i).image for i in range(12)], video.spec.fps)
    seen = []
    detect_frames = PoseDetector.detect_frames
    monkeypatch.setattr(
        PoseDetector,
        "detect_frames",
        lambda self, frames, **kw: detect_frames(self, [seen.append(1) or f for f in frames], **kw),
    )
    assert len(load_driving_poses(workdir / "dance.mp4", max_frames=3, progress=False)) == 3
    assert len(seen) == 3  # the other 9 frames were neither decoded nor detected


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--steps", "0", "steps must be from 1 to 1000"),
        ("--guidance", "nan", "guidance must be from 0"),
        ("--guidance", "1e6", "guidance must be from 0"),
        ("--frame-chunk", "0", "--frame-chunk must be at least 1"),
        ("--window-overlap", "16", "window overlap"),
        ("--device", "tpu", "unknown device"),
        ("--max-frames", "0", "--max-frames must be at least 1"),
    ],
)
def test_bad_sampling_and_hardware_options_stop_before_any_work(workdir, capsys, option, value, message):
    assert _animate(workdir, option, value, out="bad.mp4") == 2
    assert message in capsys.readouterr().err
    assert not (workdir / "bad.mp4").exists()
