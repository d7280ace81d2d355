"""`magicpose pose extract | render | align` on a short real video and on bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from magicpose.interfaces.cli import main
from magicpose.media import read_video
from magicpose.poses.openpose_json import load_poses
from magicpose.poses.render import draw_openpose

from .conftest import reference, shifted_frames


@pytest.fixture(scope="module")
def extracted(astronaut_video, tmp_path_factory):
    folder = tmp_path_factory.mktemp("extract")
    code = main(
        [
            "pose",
            "extract",
            str(astronaut_video),
            "-o",
            str(folder / "poses.json"),
            "--preview",
            str(folder / "skeleton.mp4"),
        ]
    )
    assert code == 0
    return folder


def test_extract_writes_poses_at_the_source_fps_and_a_preview(extracted):
    sequence = load_poses(extracted / "poses.json")
    assert len(sequence) == 5 and sequence.fps == pytest.approx(12) and sequence.size == (256, 256)
    assert sequence.found.tolist() == [True, True, False, True, True]
    frames, fps = read_video(extracted / "skeleton.mp4")
    assert len(frames) == 5 and fps == pytest.approx(12) and frames[0].shape == (256, 256, 3)
    expected = draw_openpose(sequence[0], 256, 256).astype(float)
    assert np.abs(frames[0].astype(float) - expected).mean() < 4  # H.264 of the exact render


def test_render_with_and_without_parts(extracted, capsys):
    assert main(["pose", "render", str(extracted / "poses.json"), "-o", str(extracted / "full.mp4")]) == 0
    assert (
        main(
            [
                "pose",
                "render",
                str(extracted / "poses.json"),
                "-o",
                str(extracted / "bare.mp4"),
                "--no-face",
                "--no-hands",
            ]
        )
        == 0
    )
    full, _ = read_video(extracted / "full.mp4")
    bare, _ = read_video(extracted / "bare.mp4")
    white = lambda frame: int((frame.min(axis=2) > 200).sum())  # noqa: E731 - the face dots
    assert white(full[0]) > 50 and white(bare[0]) == 0


def test_render_a_single_openpose_frame_to_png(tmp_path):
    case = reference("openpose_render", "case06.json")
    assert main(["pose", "render", str(case), "-o", str(tmp_path / "case06.png")]) == 0
    rendered = np.asarray(Image.open(tmp_path / "case06.png"))
    expected = np.asarray(Image.open(reference("openpose_render", "case06.png")).convert("RGB"))
    assert np.array_equal(rendered, expected)


def test_extract_from_a_photo_and_align_a_video_to_it(extracted, tmp_path):
    photo = reference("real_media", "camera.png")
    assert (
        main(
            [
                "pose",
                "extract",
                str(photo),
                "-o",
                str(tmp_path / "camera.json"),
                "--preview",
                str(tmp_path / "camera.png"),
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "camera.png").size == (512, 512)
    code = main(
        [
            "pose",
            "align",
            str(extracted / "poses.json"),
            "--reference",
            str(photo),
            "-o",
            str(tmp_path / "aligned.json"),
            "--preview",
            str(tmp_path / "aligned.mp4"),
        ]
    )
    assert code == 0
    aligned, reference_pose = load_poses(tmp_path / "aligned.json"), load_poses(tmp_path / "camera.json")[0]
    assert aligned.size == (512, 512) and len(aligned) == 5
    np.testing.assert_allclose(aligned[0].body[1, :2], reference_pose.body[1, :2], atol=1e-6)
    assert len(read_video(tmp_path / "aligned.mp4")[0]) == 5


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda d: d / "missing.mp4", "not found"),
        (lambda d: (d / "fake.mp4").write_bytes(b"garbage" * 20) and d / "fake.mp4", "cannot read"),
        (
            lambda d: (
                (d / "gray16.png").parent.mkdir(exist_ok=True)
                or Image.new("I;16", (8, 8)).save(d / "gray16.png")
                or d / "gray16.png"
            ),
            "mode",
        ),
        (lambda d: Image.new("RGB", (96, 96)).save(d / "black.png") or d / "black.png", "no person"),
    ],
)
def test_bad_inputs_exit_2_with_a_message_and_no_output(tmp_path, capsys, make_input, message):
    source = make_input(tmp_path)
    output = tmp_path / "out" / "poses.json"
    assert main(["pose", "extract", str(source), "-o", str(output), "--preview", str(tmp_path / "out" / "p.mp4")]) == 2
    assert message in capsys.readouterr().err
    assert not output.parent.exists() or list(output.parent.iterdir()) == []


def test_video_with_nobody_exits_2(tmp_path, capsys):
    from magicpose.media import write_video

    write_video(tmp_path / "empty_room.mp4", [np.full((64, 64, 3), 40, np.uint8)] * 3, fps=10)
    assert main(["pose", "extract", str(tmp_path / "empty_room.mp4"), "-o", str(tmp_path / "poses.json")]) == 2
    assert "no person" in capsys.readouterr().err and not (tmp_path / "poses.json").exists()


def test_render_rejects_bad_pose_files_and_outputs(tmp_path, capsys):
    (tmp_path / "bad.json").write_text(json.dumps({"nothing": 1}))
    assert main(["pose", "render", str(tmp_path / "bad.json"), "-o", str(tmp_path / "x.mp4")]) == 2
    assert "OpenPose" in capsys.readouterr().err
    case = reference("openpose_render", "case01.json")
    assert main(["pose", "render", str(case), "-o", str(tmp_path / "x.avi")]) == 2
    assert ".mp4" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


@pytest.fixture(scope="module")
def crossing_video(tmp_path_factory) -> Path:
    """Two puppets, 12 frames at 15 fps, 384 x 256 (the start of `crossing_clip`)."""
    from magicpose.data.puppet.crowd import crossing_clip
    from magicpose.media import write_video

    clip = crossing_clip(num_frames=40)
    path = tmp_path_factory.mktemp("crossing") / "two_puppets.mp4"
    write_video(path, clip.frames[:12], fps=clip.fps)
    return path


def test_extract_follows_the_chosen_person_and_the_preview_outlines_them(crossing_video, tmp_path, capsys):
    out = tmp_path / "poses.json"
    preview = tmp_path / "skeleton.mp4"
    args = ["pose", "extract", str(crossing_video), "-o", str(out), "--preview", str(preview), "--person", "1"]
    assert main(args + ["--smooth", "high"]) == 0
    printed = capsys.readouterr().out
    assert "followed the number 1 from the left person of 2 on frame 0" in printed and "smoothing high" in printed
    sequence = load_poses(out)
    assert sequence.person["mode"] == "people" and sequence.person["choice"] == 1
    box = sequence.person["boxes"][0]
    assert 190 < (box[0] + box[2]) / 2 < 330  # the puppet on the right
    frames, _ = read_video(preview)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    edge = frames[0][y0 + 5 : y1 - 5, x0].astype(float)  # the grey outline's left side
    assert np.median(edge, axis=0) == pytest.approx([160, 160, 160], abs=40)


def test_extract_rejects_a_person_who_is_not_there(crossing_video, tmp_path, capsys):
    out = tmp_path / "poses.json"
    assert main(["pose", "extract", str(crossing_video), "-o", str(out), "--person", "2"]) == 2
    assert "shows 2" in capsys.readouterr().err and not out.exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["pose", "extract", str(crossing_video), "-o", str(out), "--person", "tallest"])
    assert exit_info.value.code == 2 and "largest, center or" in capsys.readouterr().err


def test_extract_smoothing_levels_are_the_library_levels(capsys):
    from magicpose.interfaces.cli import build_parser
    from magicpose.poses.smoothing import DEFAULT_SMOOTHING, SMOOTHING_LEVELS

    args = build_parser().parse_args(["pose", "extract", "in.mp4", "-o", "out.json"])
    assert args.smooth == DEFAULT_SMOOTHING and args.person == "largest"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["pose", "extract", "in.mp4", "-o", "out.json", "--smooth", "bogus"])
    assert "(choose from " + ", ".join(repr(level) for level in SMOOTHING_LEVELS) + ")" in capsys.readouterr().err


def _nose_runs(sequence) -> list[int]:
    """Which run of equal poses each tick belongs to (0, 0, 1, 2, 2, ...): a frame held for several ticks
    repeats its pose exactly (smoothing off); the astronaut slides right, so each next frame's nose is further."""
    noses = [pose.body[0, 0] for pose in sequence.frames]
    assert all(later >= earlier for earlier, later in zip(noses, noses[1:]))  # the frames in their order
    return [int(run) for run in np.cumsum([0] + [later != earlier for earlier, later in zip(noses, noses[1:])])]


def test_extract_puts_a_variable_frame_rate_on_the_constant_clock_animate_uses(astronaut, tmp_path, capsys):
    import cv2

    from tests.test_real_media import make_clip

    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    times = np.cumsum([0] + [1 / 15 if index % 3 else 0.2 for index in range(1, 8)])  # 15 fps, 0.2 s stalls
    make_clip(tmp_path / "phone.mp4", "aac", seconds=0.8, late=0.0, times=times, images=shifted_frames(small, 8, 10))
    assert (
        main(["pose", "extract", str(tmp_path / "phone.mp4"), "-o", str(tmp_path / "p.json"), "--smooth", "off"]) == 0
    )
    line = capsys.readouterr().out
    assert "12 frames at 15 fps" in line and "constant 15 fps clock" in line and "(4 repeated, 0 dropped)" in line
    sequence = load_poses(tmp_path / "p.json")
    assert sequence.fps == pytest.approx(15) and len(sequence) == 12  # 8 frames, each stall held for three ticks
    assert _nose_runs(sequence) == [0, 1, 2, 2, 2, 3, 4, 5, 5, 5, 6, 7]


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_extract_reads_an_animated_gif_or_webp_as_a_video_with_its_delays(astronaut, tmp_path, capsys, suffix):
    import cv2

    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    frames = [Image.fromarray(frame) for frame in shifted_frames(small, 5, 10)]
    source = tmp_path / f"dance{suffix}"
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=[100, 50, 200, 70, 80], loop=0)
    assert main(["pose", "extract", str(source), "-o", str(tmp_path / "p.json"), "--smooth", "off"]) == 0
    assert "variable frame rate (5-20 fps)" in capsys.readouterr().out
    sequence = load_poses(tmp_path / "p.json")
    # a 56 ms tick (as fast as all but the briefest tenth of the delays): each frame from the tick nearest its time
    assert sequence.fps == pytest.approx(1 / 0.056) and len(sequence) == 9  # 0.5 s
    assert _nose_runs(sequence) == [0, 0, 1, 2, 2, 2, 3, 4, 4]
