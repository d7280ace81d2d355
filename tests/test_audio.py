"""Sound into the mp4s magicpose writes: AAC copied, other codecs encoded, cut to the frames in sync."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from magicpose.audio import AudioCut, probe_audio
from magicpose.errors import DamagedMediaWarning, InputError
from magicpose.media import VideoWriter, write_video

FPS = 15


def stepped_tone(seconds: float, rate: int) -> np.ndarray:
    """A tone whose pitch jumps every 10 ms to a random one (200 Hz to 4 kHz), over a little noise (both
    seeded): no stretch of it sounds like another, so where a cut starts is found by cross-correlation."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    pitch = rng.uniform(200.0, 4000.0, size=int(seconds * 100) + 1)[(t * 100).astype(int)]
    tone = 0.3 * np.sin(2 * np.pi * np.cumsum(pitch) / rate) + 0.1 * rng.standard_normal(len(t))
    return tone.astype(np.float32)


def make_clip(path: Path, seconds: float, codec: str = "aac", rate: int = 44100, layout: str = "stereo", video=True):
    """A clip with the stepped tone (and grey frames at 15 fps unless `video` is False)."""
    tone = stepped_tone(seconds, rate)
    with av.open(str(path), "w") as container:
        sound = container.add_stream(codec, rate=rate, layout=layout)  # every stream before the first packet
        picture = container.add_stream("libx264", rate=FPS) if video else None
        if video:
            picture.width, picture.height, picture.pix_fmt = 32, 32, "yuv420p"
            for index in range(round(seconds * FPS)):
                frame = np.full((32, 32, 3), index * 4 % 256, dtype=np.uint8)
                container.mux(picture.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(picture.encode(None))
        channels = 1 if layout == "mono" else 2
        frame = av.AudioFrame.from_ndarray(np.repeat(tone[None], channels, axis=0), format="fltp", layout=layout)
        frame.sample_rate, frame.pts = rate, 0
        container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    return tone


def decoded(path: Path) -> tuple[np.ndarray, int, float, float]:
    """(first channel's samples, rate, audio duration from the container, video duration)."""
    with av.open(str(path)) as container:
        sound, picture = container.streams.audio[0], container.streams.video[0]
        samples = np.concatenate([frame.to_ndarray()[0] for frame in container.decode(sound)])
        return (
            samples,
            sound.rate,
            float(sound.duration * sound.time_base),
            float(picture.duration * picture.time_base),
        )


def offset_of(samples: np.ndarray, source: np.ndarray, expected: int, search: int = 1500) -> int:
    """The lag (in samples, from `expected`) where the start of `samples` matches `source` best."""
    window = samples[200:4200]  # past the first packet's edge, 4000 samples of content
    lags = range(-min(search, expected + 200), search)
    scores = [np.dot(window, source[expected + 200 + lag : expected + 4200 + lag]) for lag in lags]
    return list(lags)[int(np.argmax(scores))]


def write(path: Path, cut: AudioCut, frames: int = 8) -> VideoWriter:
    with VideoWriter(path, FPS, audio=cut) as writer:
        for index in range(frames):
            writer.write(np.full((32, 32, 3), index * 20, dtype=np.uint8))
    return writer


@pytest.mark.parametrize("start", [0.0, 0.4, 2.3])  # 2.3 s: read from a seek, a second before the cut
def test_aac_is_copied_cut_to_the_frames_and_starts_at_the_offset(tmp_path, start):
    tone = make_clip(tmp_path / "dance.mp4", 4.0)
    info = probe_audio(tmp_path / "dance.mp4")
    assert (info.codec, info.sample_rate, info.channels, info.copyable) == ("aac", 44100, 2, True)
    assert info.duration == pytest.approx(4.0, abs=0.03)
    writer = write(tmp_path / "out.mp4", AudioCut(tmp_path / "dance.mp4", start, 8 / FPS))
    assert writer.audio_copied is True
    samples, rate, audio_seconds, video_seconds = decoded(tmp_path / "out.mp4")
    assert video_seconds == pytest.approx(8 / FPS)
    assert abs(audio_seconds - video_seconds) < 1 / FPS  # the container's duration
    assert abs(len(samples) / rate - video_seconds) < 1 / FPS  # what a player decodes (whole AAC packets)
    assert offset_of(samples, tone, round(start * rate)) == 0  # to the sample: the edit list hides the pre-roll


@pytest.mark.parametrize(
    "name, codec, rate, layout, out_rate",
    [
        ("dance.wav", "pcm_s16le", 22050, "mono", 22050),
        ("dance.mov", "pcm_s16le", 48000, "stereo", 48000),
        ("odd.wav", "pcm_s16le", 37800, "mono", 44100),  # a rate AAC does not have: resampled
    ],
)
def test_other_codecs_are_encoded_to_aac_cut_to_the_sample(tmp_path, name, codec, rate, layout, out_rate):
    tone = make_clip(tmp_path / name, 3.0, codec, rate, layout, video=name.endswith(".mov"))
    info = probe_audio(tmp_path / name)
    assert info.codec == codec and not info.copyable
    for start in (0.4, 1.7):
        writer = write(tmp_path / "out.mp4", AudioCut(tmp_path / name, start, 8 / FPS))
        assert writer.audio_copied is False
        samples, decoded_rate, audio_seconds, video_seconds = decoded(tmp_path / "out.mp4")
        assert decoded_rate == out_rate and abs(audio_seconds - video_seconds) < 1 / FPS
        assert abs(len(samples) / decoded_rate - video_seconds) < 1 / FPS
        if out_rate == rate:
            assert abs(offset_of(samples, tone, round(start * rate))) <= 1
        else:  # compare at the output rate
            resampled = np.interp(np.arange(int(3.0 * out_rate)) / out_rate, np.arange(len(tone)) / rate, tone)
            assert abs(offset_of(samples, resampled, round(start * out_rate))) <= 2


def test_sound_shorter_than_the_video_ends_with_the_sound(tmp_path):
    make_clip(tmp_path / "short.mp4", 0.5)
    write(tmp_path / "out.mp4", AudioCut(tmp_path / "short.mp4", 0.2, 16 / FPS), frames=16)
    _, _, audio_seconds, video_seconds = decoded(tmp_path / "out.mp4")
    assert video_seconds == pytest.approx(16 / FPS) and audio_seconds == pytest.approx(0.3, abs=0.03)


def test_probe_tells_no_sound_from_a_bad_file(tmp_path):
    write_video(tmp_path / "silent.mp4", [np.zeros((16, 16, 3), np.uint8)] * 3, FPS)
    assert probe_audio(tmp_path / "silent.mp4") is None
    with pytest.raises(InputError, match="not found"):
        probe_audio(tmp_path / "missing.wav")
    (tmp_path / "junk.mp3").write_bytes(b"no sound here" * 50)
    with pytest.raises(InputError, match="cannot read"):
        probe_audio(tmp_path / "junk.mp3")


def test_a_failed_write_with_sound_leaves_nothing(tmp_path):
    make_clip(tmp_path / "dance.mp4", 1.0)
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "out.mp4", FPS, audio=AudioCut(tmp_path / "dance.mp4", 0.0, 1.0)) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
            raise RuntimeError("stopped")
    assert list(tmp_path.iterdir()) == [tmp_path / "dance.mp4"]
    write_video(tmp_path / "silent.mp4", [np.zeros((16, 16, 3), np.uint8)] * 2, FPS)
    with pytest.warns(DamagedMediaWarning, match="has no audio stream.*the result is silent"):  # the pictures are kept
        write(tmp_path / "out.mp4", AudioCut(tmp_path / "silent.mp4", 0.0, 1.0))
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert not container.streams.audio and container.streams.video[0].frames == 8
