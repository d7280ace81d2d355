"""Media as users' files have it, made here with PyAV: sound that starts late in every codec and container,
variable frame rates, GIF and WebP delays, damaged sound; and one real damaged file, OpenCV's Megamind.avi.
Sync is measured, to 25 ms, against the sound made."""

from __future__ import annotations

import hashlib
import os
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from magicpose.audio import AudioCut
from magicpose.errors import DamagedMediaWarning, InputError
from magicpose.media import VideoReader, is_animated_image, write_video
from magicpose.poses.types import Pose, PoseSequence
from magicpose.timing import constant_rate_frames
from magicpose.workflows.animation import Driving, audio_cut, read_driving

RATE, FPS, LATE = 48000, 15, 0.475  # the sound starts 0.475 s after the pictures, as in a camera's MOV
SYNC = round(0.025 * RATE)  # 25 ms


def noise(seconds: float) -> np.ndarray:
    """Seeded noise: no stretch of it looks like another, so cross-correlation finds where a cut sits."""
    return (0.3 * np.random.default_rng(0).standard_normal(round(seconds * RATE))).astype(np.float32)


def audio_frame(sound: np.ndarray, stream, pts: int):
    """`sound` (mono float) as one stereo frame in the encoder's own sample format."""
    kind = stream.codec_context.format
    array = np.repeat(sound[None], 2, axis=0).clip(-1, 1)
    if not kind.is_planar:
        array = array.T.reshape(1, -1)
    if kind.name.startswith("s16"):
        array = (array * 32767).astype(np.int16)
    elif kind.name.startswith("s32"):
        array = (array * 2**31 * 0.99).astype(np.int32)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(array), format=kind.name, layout="stereo")
    frame.sample_rate, frame.pts, frame.time_base = RATE, pts, Fraction(1, RATE)
    return frame


def make_clip(path: Path, codec: str, seconds: float = 1.6, late: float = LATE, times=None, images=None):
    """A clip (VP8 in WebM, H.264 elsewhere) of `images` (32x32 greys by default) whose sound starts `late`
    seconds after its first frame; frames at `times` (seconds), 15 fps by default. Returns the sound on the
    clip's timeline."""
    times = np.arange(round((seconds + late) * FPS)) / FPS if times is None else np.asarray(times)
    images = images or [np.full((32, 32, 3), index * 8 % 256, np.uint8) for index in range(len(times))]
    sound = noise(seconds)
    with av.open(str(path), "w") as container:
        audio = container.add_stream(codec, rate=RATE, layout="stereo")  # every stream before the first packet
        video = container.add_stream("libvpx" if path.suffix == ".webm" else "libx264", rate=FPS)
        video.height, video.width = images[0].shape[:2]
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = Fraction(1, 1000)
        for index, time in enumerate(times):
            frame = av.VideoFrame.from_ndarray(images[index % len(images)], format="rgb24")
            frame.pts, frame.time_base = round(time * 1000), Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        container.mux(audio.encode(audio_frame(sound, audio, round(late * RATE))))
        container.mux(audio.encode(None))
    return np.concatenate([np.zeros(round(late * RATE), np.float32), sound])


def sound_of(path: Path) -> tuple[np.ndarray, float, float]:
    """(the first channel, as decoded; the sound's and the pictures' durations from the container)."""
    with av.open(str(path)) as container:
        audio, video = container.streams.audio[0], container.streams.video[0]
        samples = np.concatenate([frame.to_ndarray()[0] for frame in container.decode(audio)])
        return samples, float(audio.duration * audio.time_base), float(video.duration * video.time_base)


def lag(samples: np.ndarray, timeline: np.ndarray, start: float, at: float) -> int:
    """Samples by which the output plays late (+) or early (-) against `timeline` cut at `start`, measured on
    4000 samples from `at` seconds into the output."""
    first, expected = round(at * RATE), round((start + at) * RATE)
    window = samples[first : first + 4000]
    assert len(window) == 4000, "the output's sound is too short to measure"
    lags = range(-2 * SYNC, 2 * SYNC)
    scores = [np.dot(window, timeline[expected - shift : expected - shift + 4000]) for shift in lags]
    return list(lags)[int(np.argmax(scores))]


def driving_of(path: Path, start: float, frames: int) -> Driving:
    """The driving video as the animate workflow sees it: its first frame from --start on the container's clock."""
    with VideoReader(path) as reader:
        first = int(np.argmin(np.abs(reader.times - start)))
        when, fps = float(reader.times[first]), reader.fps
    return Driving(PoseSequence([Pose()] * frames, 32, 32, fps), path, when, fps)


CODECS = {"aac": "aac", "mp3": "libmp3lame", "pcm": "pcm_s16le", "opus": "libopus", "ac3": "ac3"}
UNWRITABLE = {
    ("webm", "aac"): "WebM takes only Opus and Vorbis sound",
    ("webm", "mp3"): "WebM takes only Opus and Vorbis sound",
    ("webm", "pcm"): "WebM takes only Opus and Vorbis sound",
    ("webm", "ac3"): "WebM takes only Opus and Vorbis sound",
    ("mov", "opus"): "FFmpeg's mov muxer does not write Opus",
}
PAIRS = [
    pytest.param(
        box, name, marks=[pytest.mark.skip(reason=UNWRITABLE[box, name])] if (box, name) in UNWRITABLE else []
    )
    for box in ("mp4", "mov", "mkv", "webm")
    for name in CODECS
]


@pytest.mark.parametrize("box, name", PAIRS)
def test_a_late_sound_keeps_its_place_in_every_codec_and_container(tmp_path, box, name):
    timeline = make_clip(tmp_path / f"clip.{box}", CODECS[name])
    for start in (0.0, 0.6):  # a cut before the sound starts, and one inside it
        frames = 12
        driving = driving_of(tmp_path / f"clip.{box}", start, frames)
        cut = audio_cut("driving", driving, frames, FPS)
        write_video(tmp_path / "out.mp4", [np.zeros((32, 32, 3), np.uint8)] * frames, FPS, audio=cut)
        samples, audio_seconds, video_seconds = sound_of(tmp_path / "out.mp4")
        assert video_seconds == pytest.approx(frames / FPS)
        assert abs(audio_seconds - video_seconds) < 1 / FPS and abs(len(samples) / RATE - video_seconds) < 1 / FPS
        if start < LATE:
            assert np.abs(samples[: round((LATE - start) * RATE) - SYNC]).max() < 1e-3  # silence until it plays
        assert abs(lag(samples, timeline, start, at=0.55 - start if start < LATE else 0.05)) <= SYNC


def damaged(source: Path, target: Path, bad) -> None:
    """`source` remuxed with the sound packets `bad(index)` names replaced by noise of their size."""
    rng = np.random.default_rng(1)
    with av.open(str(source)) as given, av.open(str(target), "w") as made:
        streams = {s.index: made.add_stream_from_template(s) for s in given.streams}
        heard = 0
        for packet in given.demux():
            if packet.size == 0:  # the end of a stream
                continue
            stream = streams[packet.stream.index]
            if packet.stream.type == "audio":
                if bad(heard):
                    noisy = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                    noisy.pts, noisy.dts, noisy.time_base = packet.pts, packet.dts, packet.time_base
                    noisy.duration, packet = packet.duration, noisy
                heard += 1
            packet.stream = stream
            made.mux(packet)


def test_a_damaged_sound_packet_is_skipped_with_a_warning_and_the_rest_stays_in_sync(tmp_path):
    timeline = make_clip(tmp_path / "clip.mkv", "libmp3lame", late=0.0)
    damaged(tmp_path / "clip.mkv", tmp_path / "damaged.mkv", lambda index: index == 5)
    driving = driving_of(tmp_path / "damaged.mkv", 0.0, 18)
    with pytest.warns(DamagedMediaWarning, match=r"[12] sound packet\(s\) do not decode and are skipped"):
        cut = audio_cut("driving", driving, 18, FPS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # already told: the writing is quiet
        write_video(tmp_path / "out.mp4", [np.zeros((32, 32, 3), np.uint8)] * 18, FPS, audio=cut)
    samples, audio_seconds, video_seconds = sound_of(tmp_path / "out.mp4")
    assert abs(audio_seconds - video_seconds) < 1 / FPS
    assert abs(lag(samples, timeline, 0.0, at=0.8)) <= SYNC  # after the damage, still in place

    damaged(tmp_path / "clip.mkv", tmp_path / "ruined.mkv", lambda index: True)
    with pytest.warns(DamagedMediaWarning, match="cannot be used.*the result is silent"):
        assert audio_cut("driving", driving_of(tmp_path / "ruined.mkv", 0.0, 18), 18, FPS) is None


def test_an_unusable_track_in_the_writer_leaves_the_pictures(tmp_path):
    make_clip(tmp_path / "clip.mkv", "aac", late=0.0)
    damaged(tmp_path / "clip.mkv", tmp_path / "ruined.mkv", lambda index: True)
    with pytest.warns(DamagedMediaWarning, match="cannot be used"):  # checked or not, never a lost run
        write_video(
            tmp_path / "out.mp4",
            [np.zeros((32, 32, 3), np.uint8)] * 6,
            FPS,
            audio=AudioCut(tmp_path / "ruined.mkv", 0.0, 0.4),
        )
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.video[0].frames == 6


def test_a_variable_frame_rate_is_read_by_its_timestamps_and_kept_in_place_on_a_constant_clock(tmp_path):
    times = np.cumsum([0] + [0.033 if index % 3 else 0.1 for index in range(19)])  # 30 fps with 100 ms stalls
    make_clip(tmp_path / "phone.mp4", "aac", late=0.0, times=times)
    with VideoReader(tmp_path / "phone.mp4") as reader:
        assert reader.variable and reader.frame_count == 20 and len(list(reader)) == 20
        np.testing.assert_allclose(reader.times, times, atol=1e-3)
        fps, end = reader.fps, reader.end
    assert fps == pytest.approx(1 / 0.033, rel=0.02)  # the rate of the usual frames: none dropped
    picks = constant_rate_frames(times, end, fps)
    assert sorted(set(picks)) == list(range(20))
    for index, time in enumerate(times):  # each frame starts on the tick nearest its time
        assert abs(picks.index(index) / fps - time) <= 0.5 / fps + 1e-9
    assert abs(len(picks) / fps - end) < 1 / fps  # the clip keeps its length, so its sound fits


def test_constant_rates_and_gif_delays_are_the_containers(tmp_path):
    frames = [Image.fromarray(np.full((16, 16, 3), index * 6, np.uint8)) for index in range(40)]
    frames[0].save(tmp_path / "even.gif", save_all=True, append_images=frames[1:6], duration=70, loop=0)
    # 15.1 fps as GIF's 10 ms clock writes it: delays of 70 and 60 ms in turn, a constant rate all the same
    frames[0].save(tmp_path / "odd.gif", save_all=True, append_images=frames[1:], duration=[70, 60] * 20, loop=0)
    frames[0].save(tmp_path / "vfr.gif", save_all=True, append_images=frames[1:6], duration=[100, 50, 200, 70, 70, 70])
    expected = {"even.gif": (6, 100 / 7, False), "odd.gif": (40, 1 / 0.065, False), "vfr.gif": (6, None, True)}
    for name, (count, fps, variable) in expected.items():
        with VideoReader(tmp_path / name) as reader:
            assert len(list(reader)) == count and reader.variable == variable
            if fps:  # within 0.5 %: 40 frames end within 10 ms of their times (at 16.67 fps they were 0.3 s off)
                assert reader.fps == pytest.approx(fps, rel=0.005)
    with VideoReader(tmp_path / "vfr.gif") as reader:
        np.testing.assert_allclose(reader.times, [0, 0.1, 0.15, 0.35, 0.42, 0.49])
        assert reader.end == pytest.approx(0.56)
    make_clip(tmp_path / "ntsc.mkv", "libopus", late=0.0, times=np.arange(12) * 1001 / 30000)  # 1 ms clock
    with VideoReader(tmp_path / "ntsc.mkv") as reader:
        assert not reader.variable and reader.fps == pytest.approx(30000 / 1001, rel=1e-3)


def test_an_animated_webp_is_a_video_with_its_delays(tmp_path):
    frames = [Image.fromarray(np.full((16, 16, 3), index * 40, np.uint8)) for index in range(5)]
    frames[0].save(tmp_path / "dance.webp", save_all=True, append_images=frames[1:], duration=[100, 50, 200, 70, 80])
    frames[0].save(tmp_path / "still.webp")
    assert is_animated_image(tmp_path / "dance.webp") and not is_animated_image(tmp_path / "still.webp")
    with VideoReader(tmp_path / "dance.webp") as reader:
        decoded = list(reader)
        np.testing.assert_allclose(reader.times, [0, 0.1, 0.15, 0.35, 0.42])
        assert reader.end == pytest.approx(0.5) and reader.variable
    assert [frame[0, 0, 0] for frame in decoded] == [0, 40, 80, 120, 160]


def test_start_past_the_end_of_a_webm_says_so(tmp_path):
    make_clip(tmp_path / "clip.webm", "libopus", seconds=1.0, late=0.0)
    with pytest.raises(InputError, match=r"--start 60 s is past the end of .*clip.webm \(15 frames, 1.00 s\)"):
        read_driving(tmp_path / "clip.webm", start=60.0, progress=False)


@pytest.fixture(scope="module")
def puppet(tmp_path_factory):
    """A tiny model and 24 frames of a puppet dancing."""
    from magicpose.data.puppet.world import PuppetVideo, video_spec
    from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
    from tests.dummy_components import get_dummy_components

    root = tmp_path_factory.mktemp("real_media")
    MagicPosePipeline(**get_dummy_components()).save_pretrained(root / "model")
    video = PuppetVideo(video_spec("test", 1, num_frames=24, framing="full"))
    return root, [video.frame(index).image for index in range(24)]


def animate(root: Path, driving: Path, *extra) -> int:
    from magicpose.interfaces.cli import main
    from tests.reference_data import reference_path

    reference = str(reference_path("real_media", "astronaut.png"))
    model = ["--model", str(root / "model"), "--steps", "1", "--size", "32"]
    return main(
        ["animate", "--reference", reference, "--driving", str(driving), "--out", str(root / "out.mp4")]
        + [
            *model,
            *extra,
        ]
    )


@pytest.mark.slow
def test_animate_keeps_a_late_mp3_in_mkv_in_place_from_start(puppet, capsys):
    root, images = puppet
    timeline = make_clip(root / "camera.mkv", "libmp3lame", seconds=1.2, images=images)  # sound from 0.475 s
    assert animate(root, root / "camera.mkv", "--start", "0.2", "--max-frames", "12") == 0
    assert "12 frames at 15 fps" in capsys.readouterr().out
    samples, audio_seconds, video_seconds = sound_of(root / "out.mp4")
    assert video_seconds == pytest.approx(12 / FPS) and abs(audio_seconds - video_seconds) < 1 / FPS
    assert np.abs(samples[: round((LATE - 0.2) * RATE) - SYNC]).max() < 1e-3
    assert abs(lag(samples, timeline, 0.2, at=0.4)) <= SYNC


@pytest.mark.slow
def test_animate_puts_a_variable_frame_rate_on_a_constant_clock_and_says_so(puppet, capsys):
    root, images = puppet
    times = np.cumsum([0] + [1 / 15 if index % 4 else 0.2 for index in range(17)])  # 15 fps with stalls
    timeline = make_clip(
        root / "phone.mp4", "aac", seconds=float(times[-1]) + 0.1, late=0.0, times=times, images=images
    )
    assert animate(root, root / "phone.mp4") == 0
    line = capsys.readouterr().out
    with VideoReader(root / "phone.mp4") as reader:  # the last frame lasts as long as the container says
        assert times[-1] + 1 / 15 - 0.002 <= reader.end <= times[-1] + 0.2
        frames = int(np.ceil(reader.end * 15 - 1e-6))  # each stall held for three ticks
    assert f"{frames} frames at 15 fps" in line and "variable frame rate" in line and f"{frames - 18} repeated" in line
    samples, audio_seconds, video_seconds = sound_of(root / "out.mp4")
    assert video_seconds == pytest.approx(frames / FPS) and abs(audio_seconds - video_seconds) < 1 / FPS
    assert abs(lag(samples, timeline, 0.0, at=0.5)) <= SYNC


@pytest.mark.slow
def test_damaged_sound_is_told_before_any_sampling(puppet, capsys):
    root, images = puppet
    make_clip(root / "clip.mkv", "libmp3lame", seconds=1.0, late=0.0, images=images)
    damaged(root / "clip.mkv", root / "damaged.mkv", lambda index: index == 5)
    (root / "out.mp4").unlink(missing_ok=True)
    assert animate(root, root / "damaged.mkv", "--strict", "--max-frames", "4") == 2  # stopped before the model
    assert "sound packet(s) do not decode" in capsys.readouterr().err and not (root / "out.mp4").exists()


def opencv_sample(name: str, sha256: str) -> Path:
    """A file of Debian's opencv-doc examples, which .ci/run extracts into the test-media folder (as vtest.avi for
    tests/poses/test_tracking.py); `sha256`: the first 16 hex digits of the file's."""
    folder = Path(os.environ.get("MAGICPOSE_TEST_MEDIA") or Path.home() / ".cache" / "magicpose" / "test-media")
    path = folder / name
    if not path.is_file():
        message = f"{name} (Debian opencv-doc) is not in {folder}; .ci/run extracts it there"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith(sha256), f"{path} is another file"
    return path


@pytest.mark.slow
def test_animate_on_megamind_avi_skips_its_damaged_sound_packet_with_one_warning(tmp_path, capsys):
    """Megamind.avi (MPEG-4 at 23.976 fps, AC-3 sound) starts with an AC-3 packet that does not decode: ffmpeg plays
    it with one warning, and so does animate, with the embedded model, its sound and pictures the same length."""
    from magicpose.interfaces.cli import main
    from tests.reference_data import reference_path

    megamind = opencv_sample("Megamind.avi", "0057387cb7e75c8f")
    reference = str(reference_path("real_media", "astronaut.png"))
    args = ["animate", "--reference", reference, "--driving", str(megamind), "--out", str(tmp_path / "out.mp4")]
    assert main(args + ["--steps", "1", "--size", "32", "--max-frames", "2"]) == 0  # the embedded model
    printed = capsys.readouterr()
    assert printed.err.count("warning:") == 1 and "Megamind.avi: 1 sound packet(s) do not decode" in printed.err
    assert "2 frames at 23.976 fps" in printed.out and "audio from Megamind.avi" in printed.out
    samples, audio_seconds, video_seconds = sound_of(tmp_path / "out.mp4")
    tick = 125 / 2997
    assert video_seconds == pytest.approx(2 * tick, abs=1e-3)
    assert abs(audio_seconds - video_seconds) < tick and abs(len(samples) / RATE - video_seconds) < tick
