"""`magicpose animate` end to end on a tiny random model: real photo in, H.264 video out."""

import argparse
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


@pytest.mark.slow
def test_animate_writes_a_playable_video_and_grid_aligned_to_a_real_photo(workdir, capsys):
    assert _animate(workdir, "--grid") == 0
    assert "aligned" in capsys.readouterr().out
    frames, fps = read_video(workdir / "out.mp4")
    assert len(frames) == 2 and frames[0].shape == (32, 32, 3) and fps == pytest.approx(15)
    with av.open(str(workdir / "out.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    grid, _ = read_video(workdir / "out_grid.mp4")
    assert grid[0].shape == (32, 96, 3)


@pytest.mark.slow
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


@pytest.mark.slow
def test_reference_without_a_person_warns_and_goes_on_unaligned(workdir, caplog):
    blank = workdir / "blank.png"
    write_image(blank, np.full((64, 64, 3), 200, dtype=np.uint8))
    assert _animate(workdir, reference=blank, out="blank.mp4") == 0
    assert "no person found in the reference photo" in caplog.text
    assert (workdir / "blank.mp4").is_file()


def test_bad_inputs_fail_clearly_and_leave_no_output(workdir, tmp_path, capsys):
    (tmp_path / "photo.png").write_bytes(b"not a folder")
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"version": 1.3, "canvas_width": 64, "canvas_height": 64, "people": []}))
    cases = [
        (["--reference", str(tmp_path / "missing.png")], "missing.png"),
        (["--out", str(tmp_path / "photo.png" / "x.mp4")], "is a file, not a folder"),
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


@pytest.mark.slow
def test_an_output_folder_that_does_not_exist_yet_is_made(workdir, tmp_path):
    assert _animate(workdir, out=str(tmp_path / "new" / "folder" / "x.mp4")) == 0
    assert (tmp_path / "new" / "folder" / "x.mp4").is_file()


@pytest.mark.slow
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


def test_fit_crop_says_when_it_cuts_the_person_and_fit_person_keeps_them(workdir, capsys, caplog):
    from magicpose.media import read_image

    photo = read_image(reference_path("real_media", "astronaut.png"))
    wide = np.full((512, 1280, 3), 128, dtype=np.uint8)
    wide[:, 250:762] = photo  # the person left of centre: a square centre crop cuts their left side
    write_image(workdir / "wide.png", wide)
    assert _animate(workdir, "--fit", "crop", reference=workdir / "wide.png", out="crop.mp4") == 0
    assert "aligned (person partly cropped: use --fit pad or person)" in capsys.readouterr().out
    assert "partly outside the 32x32 frame after --fit crop" in caplog.text
    caplog.clear()
    for fit in ("person", "pad"):
        assert _animate(workdir, "--fit", fit, reference=workdir / "wide.png", out=f"{fit}.mp4") == 0
        out = capsys.readouterr().out
        assert ", aligned" in out and "cropped" not in out and "partly outside" not in caplog.text
    assert not np.array_equal(read_video(workdir / "person.mp4")[0][0], read_video(workdir / "crop.mp4")[0][0])


@pytest.mark.slow
def test_any_shape_and_what_happened_to_the_driving_frames(workdir, capsys):
    from magicpose.data.puppet.world import PuppetVideo, video_spec
    from magicpose.poses.types import PoseSequence

    dance = PuppetVideo(video_spec("test", 0, num_frames=3)).poses()
    gappy = PoseSequence(dance.frames, dance.width, dance.height, dance.fps, found=[True, False, True])
    save_poses(gappy, workdir / "gappy.json")
    code = main(
        [
            *("animate", "--reference", str(reference_path("real_media", "astronaut.png"))),
            *("--driving", str(workdir / "gappy.json"), "--out", str(workdir / "tall.mp4")),
            *("--model", str(workdir / "model"), "--steps", "1", "--size", "32x48", "--grid"),
        ]
    )
    assert code == 0
    line = capsys.readouterr().out
    assert "3 frames at 15 fps, 32x48, aligned, 1 of 3 driving frames had nobody detected (filled)" in line
    frames, _ = read_video(workdir / "tall.mp4")
    grid, _ = read_video(workdir / "tall_grid.mp4")
    assert frames[0].shape == (48, 32, 3) and grid[0].shape == (48, 96, 3)


@pytest.mark.parametrize(
    "option, values, message",
    [
        ("--align-scale", ["0"], "--align-scale must be a positive number"),
        ("--align-frame", ["2"], "--align-frame must be a driving frame from 0 to 1"),
        ("--align-offset", ["1", "inf"], "--align-offset takes two finite numbers"),
        ("--start", ["-1"], "--start must be a number of seconds >= 0"),
        ("--start", ["1"], "--start 1 s is past the end"),
    ],
)
def test_bad_alignment_and_start_values_stop_before_the_model_loads(workdir, capsys, option, values, message):
    assert _animate(workdir, option, *values, out="bad.mp4") == 2
    assert message in capsys.readouterr().err
    assert not (workdir / "bad.mp4").exists()


def test_skeletons_are_drawn_once_and_handed_over_when_the_condition_size_is_the_output_size(monkeypatch):
    from types import SimpleNamespace

    from magicpose.data.puppet.world import PuppetVideo, video_spec
    from magicpose.poses.types import PoseSequence
    from magicpose.workflows import animation

    drawn, given = [], []
    draw = animation.draw_openpose
    monkeypatch.setattr(animation, "draw_openpose", lambda *a, **k: drawn.append(1) or draw(*a, **k))

    class Pipeline:  # SD's geometry: the ControlNet takes the output size
        vae_scale_factor, pose_scale_factor = 8, 8
        unet = SimpleNamespace(config=SimpleNamespace(sample_size=4))

        def __call__(self, reference, poses, **kwargs):
            given.append(poses)
            return SimpleNamespace(frames=[np.zeros((32, 32, 3))] * len(poses))

    dance = PuppetVideo(video_spec("test", 1, num_frames=3)).poses()
    photo = PuppetVideo(video_spec("test", 0, num_frames=1)).frame(0)
    result = animation.animate(Pipeline(), photo.image, dance, known_reference_pose=photo.pose)
    assert len(drawn) == 3 and isinstance(given[0], list) and given[0] is not None
    assert all(a is b for a, b in zip(given[0], result.skeletons))
    Pipeline.pose_scale_factor = 16  # a reduced model whose ControlNet takes another size: it draws its own
    animation.animate(Pipeline(), photo.image, dance, known_reference_pose=photo.pose)
    assert isinstance(given[1], PoseSequence)


def test_handing_over_drawn_skeletons_conditions_the_model_exactly_as_drawing_there(workdir):
    import torch

    from magicpose.data.puppet.world import PuppetVideo, video_spec
    from magicpose.pipelines.assembly import load_pipeline
    from magicpose.poses.render import draw_openpose
    from magicpose.poses.types import PoseSequence

    pipeline = load_pipeline(workdir / "model")
    puppet = PuppetVideo(video_spec("test", 1, num_frames=3)).poses()  # 128 x 128
    dance = PoseSequence([pose.transformed(0.5, np.zeros(2)) for pose in puppet.frames], 64, 64, 15.0)
    drawn = [draw_openpose(pose, 64, 64) for pose in dance.frames]
    conditions = pipeline.prepare_poses(dance, 64, 64)
    assert conditions.abs().sum() > 0 and torch.equal(conditions, pipeline.prepare_poses(drawn, 64, 64))


def test_the_command_lines_choices_are_the_libraries():
    from magicpose.interfaces.options import person_argument
    from magicpose.poses import tracking

    for choice in tracking.PERSON_CHOICES:
        assert person_argument(choice.title()) == tracking.parse_person(choice) == choice
    assert person_argument("2") == tracking.parse_person("2") == 2
    with pytest.raises(argparse.ArgumentTypeError):
        person_argument("-1")
