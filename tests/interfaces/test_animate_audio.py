"""`magicpose animate` keeps the music: a dance clip with a tone in, the same stretch of the tone out."""

from __future__ import annotations

import av
import numpy as np
import pytest

from magicpose.interfaces.cli import main
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
from tests.dummy_components import get_dummy_components
from tests.reference_data import reference_path
from tests.test_audio import decoded, offset_of, stepped_tone

FPS, FRAMES, RATE = 15, 24, 44100


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A model, and a 1.6 s puppet dance at 15 fps with a stepped tone (AAC), plus the same dance silent."""
    from magicpose.data.puppet.world import PuppetVideo, video_spec
    from magicpose.media import write_video

    root = tmp_path_factory.mktemp("animate_audio")
    MagicPosePipeline(**get_dummy_components()).save_pretrained(root / "model")
    video = PuppetVideo(video_spec("test", 1, num_frames=FRAMES, framing="full"))
    frames = [video.frame(i).image for i in range(FRAMES)]
    tone = stepped_tone(FRAMES / FPS, RATE)
    with av.open(str(root / "dance.mp4"), "w") as container:
        sound = container.add_stream("aac", rate=RATE, layout="mono")
        picture = container.add_stream("libx264", rate=FPS)
        picture.height, picture.width = frames[0].shape[:2]
        picture.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(picture.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(picture.encode(None))
        chunk = av.AudioFrame.from_ndarray(tone[None], format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = RATE, 0
        container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    write_video(root / "silent.mp4", frames, FPS)
    with av.open(str(root / "music.wav"), "w") as container:  # another soundtrack, as PCM: encoded to AAC
        sound = container.add_stream("pcm_s16le", rate=22050, layout="mono")
        chunk = av.AudioFrame.from_ndarray((tone[None, ::2] * 32767).astype(np.int16), format="s16", layout="mono")
        chunk.sample_rate, chunk.pts = 22050, 0
        container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    return root, tone


def _animate(root, *extra, driving="dance.mp4", out="out.mp4"):
    return main(
        [
            "animate",
            "--reference",
            str(reference_path("real_media", "astronaut.png")),
            "--driving",
            str(root / driving),
            "--out",
            str(root / out),
            "--model",
            str(root / "model"),
            "--steps",
            "1",
            "--size",
            "32",
            *extra,
        ]
    )


def test_the_music_comes_back_cut_to_the_frames_from_the_start_offset(workdir, capsys):
    root, tone = workdir
    assert _animate(root, "--start", "0.4", "--max-frames", "8", "--grid") == 0
    line = capsys.readouterr().out
    assert "8 frames at 15 fps" in line and "audio from dance.mp4 at 0.40 s" in line
    for name in ("out.mp4", "out_grid.mp4"):
        samples, rate, audio_seconds, video_seconds = decoded(root / name)
        assert video_seconds == pytest.approx(8 / FPS, abs=1e-3)
        assert abs(audio_seconds - video_seconds) < 1 / FPS and abs(len(samples) / rate - video_seconds) < 1 / FPS
        assert offset_of(samples, tone, round(0.4 * RATE)) == 0  # the sound of driving frame 6 onwards
    with av.open(str(root / "out.mp4")) as container:
        assert container.streams.audio[0].codec_context.name == "aac"  # copied from the driving video


def test_start_skips_the_driving_frames_before_it(workdir):
    from magicpose.media import read_video
    from magicpose.poses.detect import PoseDetector
    from magicpose.workflows.animation import read_driving

    root, _ = workdir
    later = read_driving(root / "dance.mp4", start=0.4, max_frames=8, progress=False, smooth="off")
    assert (later.start, later.source_fps, len(later.poses)) == (0.4, FPS, 8)
    frames, _ = read_video(root / "dance.mp4")
    with PoseDetector() as detector:  # what a clip cut at frame 6 shows
        expected = detector.detect_video(frames[6:14], progress=False, fps=FPS)
    for a, b in zip(expected.frames, later.poses.frames):
        np.testing.assert_allclose(a.body, b.body, atol=1e-6)


def test_audio_none_a_file_and_a_silent_driving_video(workdir, capsys):
    root, tone = workdir
    assert _animate(root, "--audio", "none", "--max-frames", "4", out="none.mp4") == 0
    assert _animate(root, driving="silent.mp4", out="silent_out.mp4") == 0  # as before: no sound, no error
    for name in ("none.mp4", "silent_out.mp4"):
        with av.open(str(root / name)) as container:
            assert not container.streams.audio and container.streams.video[0].frames > 0
    capsys.readouterr()
    assert (
        _animate(root, "--audio", str(root / "music.wav"), "--start", "0.2", "--max-frames", "6", out="wav.mp4") == 0
    )
    assert "audio from music.wav at 0.20 s" in capsys.readouterr().out
    samples, rate, audio_seconds, video_seconds = decoded(root / "wav.mp4")
    assert rate == 22050 and abs(audio_seconds - video_seconds) < 1 / FPS
    assert abs(offset_of(samples, tone[::2], round(0.2 * 22050))) <= 1  # the file runs with the driving video


def test_a_missing_audio_file_or_start_past_the_end_stops_before_any_work(workdir, capsys):
    root, _ = workdir
    assert _animate(root, "--audio", str(root / "nothing.mp3"), out="bad.mp4") == 2
    assert "nothing.mp3" in capsys.readouterr().err
    assert _animate(root, "--audio", str(root / "silent.mp4"), out="bad.mp4") == 2
    assert "has no sound" in capsys.readouterr().err
    assert _animate(root, "--start", "5", out="bad.mp4") == 2
    assert "--start 5 s is past the end" in capsys.readouterr().err
    assert not (root / "bad.mp4").exists()


def test_a_jobs_file_names_its_own_soundtrack_beside_it(workdir, tmp_path, monkeypatch):
    import json

    root, _ = workdir
    reference = reference_path("real_media", "astronaut.png")
    (root / "jobs.yaml").write_text(
        f"- {{reference: {reference}, driving: dance.mp4, out: job.mp4, audio: music.wav, start: 0.2, "
        "max_frames: 4}\n"
    )
    monkeypatch.chdir(tmp_path)  # relative paths are the jobs file's, not the working folder's
    code = main(["animate", "--jobs", str(root / "jobs.yaml"), "--model", str(root / "model"), "--steps", "1"])
    assert code == 0
    (job,) = json.loads((root / "jobs_report.json").read_text())["jobs"]
    assert job["status"] == "done" and "audio from music.wav at 0.20 s" in job["message"]
    assert decoded(root / "job.mp4")[1] == 22050  # the wav's sound, encoded to AAC


def test_smoothing_and_the_person_choice_reach_the_detector(workdir, capsys):
    from magicpose.poses.detect import detector_for_smoothing
    from magicpose.poses.smoothing import DEFAULT_SMOOTHING, smooth_poses
    from magicpose.workflows.animation import read_driving

    root, _ = workdir
    raw = read_driving(root / "dance.mp4", max_frames=10, progress=False, smooth="off").poses
    default = read_driving(root / "dance.mp4", max_frames=10, progress=False).poses
    # with ours on, mediapipe's own (lagging) filter is off, as in `pose extract`
    with detector_for_smoothing(DEFAULT_SMOOTHING) as detector:
        unfiltered = read_driving(root / "dance.mp4", max_frames=10, progress=False, smooth="off", detector=detector)
    expected = smooth_poses(unfiltered.poses, DEFAULT_SMOOTHING)
    assert DEFAULT_SMOOTHING != "off" and not np.allclose(raw[4].body, default[4].body)
    for a, b in zip(expected.frames, default.frames):
        np.testing.assert_allclose(a.body, b.body)
    assert _animate(root, "--max-frames", "4", "--person", "center", out="center.mp4") == 0
    assert "followed the one person in the video (from driving frame 0)" in capsys.readouterr().out
    assert _animate(root, "--max-frames", "4", "--person", "3", out="bad.mp4") == 2
    assert "--person 3" in capsys.readouterr().err and not (root / "bad.mp4").exists()
