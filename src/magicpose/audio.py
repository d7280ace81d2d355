"""Sound for the videos magicpose writes: probe a file's audio, and carry a cut of it into an mp4.

A file's timeline starts at its first video frame (at its first sound when it has no pictures): the
moment driving frame 0 shows, so a cut [start, start + frames / fps) stays in sync with the frames
made from those driving frames. Every stream keeps its place on that timeline: a sound that starts
late (its stream's start offset, edit lists applied by FFmpeg's demuxers) or pauses is silent until it
plays. AAC is copied packet for packet, anything else encoded to AAC, both to the sample at the start
(mp4 edit lists) and within a packet (about 21 ms) at the end. A packet that does not decode is skipped
(silence in its place, as ffmpeg plays it); `check_cut` says so, or that a track is unusable, before any
work. `media.VideoWriter(..., audio=AudioCut(...))` is the way in.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from magicpose.errors import DamagedMediaWarning, InputError
from magicpose.files import not_found

AAC_BIT_RATES = {1: 96_000, 2: 192_000}  # bits/s for mono and stereo: transparent for music with FFmpeg's AAC


@dataclass(frozen=True)
class AudioInfo:
    """The first audio stream of a file."""

    path: Path
    codec: str
    sample_rate: int
    channels: int
    duration: float | None  # seconds of sound after the timeline's 0, when the container says
    copyable: bool  # AAC with its decoder configuration: an mp4 can take its packets as they are


@dataclass(frozen=True)
class AudioCut:
    """Seconds [start, start + duration) of the sound of `path`, on its timeline."""

    path: Path
    start: float
    duration: float
    checked: bool = False  # `check_cut` has decoded it (and said what was wrong)


def probe_audio(path: str | os.PathLike) -> AudioInfo | None:
    """The sound of a video or audio file; None when it has none. An unreadable file is an InputError."""

    path = Path(path)
    if not path.is_file():
        raise not_found(path, "audio file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            end = None
            if stream.duration is not None:
                end = float(((stream.start_time or 0) + stream.duration) * stream.time_base)
            elif container.duration is not None:
                end = container.duration / 1e6 + (container.start_time or 0) / 1e6
            return AudioInfo(
                path,
                stream.codec_context.name,
                int(stream.rate or 0),
                int(stream.channels or 0),
                None if end is None else max(end - _origin(container), 0.0),
                _copyable(stream),
            )
    except av.FFmpegError as error:
        raise InputError(f"cannot read {path} ({error}); pass a video or audio file with sound") from None


def check_cut(cut: AudioCut) -> AudioCut | None:
    """`cut` if its sound can be used, else (no sound, or more damaged packets than good ones) None with a
    warning: the result is then silent. Damaged packets in the cut are counted in a warning: they will be
    silence. Decodes the cut, not the whole file."""
    try:
        with av.open(str(cut.path)) as container:
            if not container.streams.audio:
                raise InputError("it has no audio stream")
            source = container.streams.audio[0]
            begin = _origin(container) + max(float(cut.start), 0.0)
            counts = {"damaged": 0}
            decoded = 0
            for frame in _decoded(container, source, begin, counts):
                decoded += 1
                if frame.time is not None and frame.time >= begin + max(float(cut.duration), 0.0):
                    break
    except (av.FFmpegError, InputError, OSError) as error:
        decoded, counts = 0, {"damaged": 0, "error": str(error)}
    if decoded <= counts["damaged"]:  # nothing, or mostly noise from damaged packets
        reason = counts.get("error") or f"{counts['damaged']} of its packets after {cut.start:.2f} s do not decode"
        warnings.warn(
            DamagedMediaWarning(f"the sound of {cut.path} cannot be used ({reason}): the result is silent"),
            stacklevel=2,
        )
        return None
    if counts["damaged"]:
        warnings.warn(
            DamagedMediaWarning(
                f"{cut.path}: {counts['damaged']} sound packet(s) do not decode and are skipped (silence in their "
                "place, as ffmpeg plays them)"
            ),
            stacklevel=2,
        )
    return replace(cut, checked=True)


def _decoded(container, source, begin: float, counts: dict) -> Iterator:
    """The audio frames of `source` from a second before `begin` (seconds in the container); a packet that
    fails to decode, or decodes as another rate or layout, is skipped and counted in counts["damaged"]."""
    _seek(container, source, begin)
    shape = None  # (rate, layout) of the stream: a damaged packet can decode as a frame of another
    for packet in container.demux(source):
        try:
            frames = packet.decode()
        except av.FFmpegError:
            counts["damaged"] += 1
            continue
        for frame in frames:
            shape = shape or (source.rate or frame.sample_rate, frame.layout.name)
            if (frame.sample_rate, frame.layout.name) != shape:
                counts["damaged"] += 1
                continue
            yield frame


def _seek(container, source, begin: float) -> None:
    """Start reading a second before `begin` (every audio packet is a key frame)."""
    if begin > 1.0:
        container.seek(int((begin - 1.0) / source.time_base), stream=source, backward=True)


def _origin(container) -> float:
    """The timeline's 0, in the container's seconds."""
    stream = container.streams.video[0] if container.streams.video else container.streams.audio[0]
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _copyable(stream) -> bool:
    return stream.codec_context.name == "aac" and bool(stream.codec_context.extradata) and bool(stream.rate)


class Soundtrack:
    """An `AudioCut` as a stream of an output container, muxed as the video advances.

    AAC that plays from the cut's start is copied packet for packet: the packet before the cut goes
    along (the decoder needs it to rebuild the first one), and timestamps start at the cut, so the mp4
    edit list hides everything before it and playback starts at the cut to the sample. Other codecs
    are decoded, cut to the sample and encoded as AAC (resampled when AAC lacks the rate, mixed down
    to stereo beyond two channels).
    """

    def __init__(self, cut: AudioCut, output):

        self._output = output
        try:
            self._input = av.open(str(cut.path))
        except av.FFmpegError as error:
            raise InputError(f"cannot read the audio of {cut.path} ({error})") from None
        try:
            if not self._input.streams.audio:
                raise InputError(f"{cut.path} has no audio stream; pass a file with sound or --audio none")
            source = self._input.streams.audio[0]
            self._begin = _origin(self._input) + max(float(cut.start), 0.0)
            self._end = self._begin + max(float(cut.duration), 0.0)
            # A sound that starts after the cut is encoded too: silence before it is then real samples, not an
            # empty edit in the mp4 that some players skip, and the track is as long as the pictures.
            late = source.start_time is not None and float(source.start_time * source.time_base) > self._begin + 0.001
            self.copied = _copyable(source) and not late
            if self.copied:
                self.stream = output.add_stream_from_template(source)
                self._packets = self._copy(source)
            else:
                rates = av.codec.Codec("aac", "w").audio_rates
                rate = (
                    source.rate if source.rate in rates else min((r for r in rates if r >= source.rate), default=48000)
                )
                layout = "mono" if source.channels == 1 else "stereo"
                self.stream = output.add_stream("aac", rate=rate, layout=layout)
                self.stream.bit_rate = AAC_BIT_RATES[1 if layout == "mono" else 2]
                self._packets = self._encode(source, rate, layout)
        except BaseException:
            self._input.close()
            raise
        self._next = None

    def _copy(self, source) -> Iterator[tuple[float, object]]:
        base = source.time_base
        begin, end = round(self._begin / base), round(self._end / base)
        default = max(round((source.codec_context.frame_size or 1024) / source.rate / base), 1)
        _seek(self._input, source, self._begin)
        before = None  # the last packet ending at or before the cut: the decoder's pre-roll
        for packet in self._input.demux(source):
            if packet.size == 0 or packet.pts is None:
                continue
            duration = packet.duration or default
            if packet.pts + duration <= begin:
                before = packet
                continue
            if packet.pts >= end:
                break
            if packet.pts + duration > end:
                packet.duration = end - packet.pts  # the track (and the edit list) ends at the cut
            for piece in (before, packet) if before is not None else (packet,):
                piece.pts -= begin
                piece.dts = piece.pts  # AAC packets are not reordered
                yield float(piece.pts * base), piece
            before = None

    def _encode(self, source, rate: int, layout: str) -> Iterator[tuple[float, object]]:

        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        first, last = round(self._begin * source.rate), round(self._end * source.rate)
        written, position, cursor = 0, None, first  # cursor: the next sample of the source the output needs

        def encoded(frames):
            nonlocal written
            for frame in frames:
                frame.pts, frame.time_base = written, Fraction(1, rate)
                written += frame.samples
                for packet in self.stream.encode(frame):
                    yield float(packet.pts * packet.time_base), packet

        for frame in _decoded(self._input, source, self._begin, {"damaged": 0}):
            start = position
            if frame.pts is not None:
                stamped = round(frame.time * source.rate)
                # Timestamps place the first frame and any real gap; between them samples follow on exactly.
                if position is None or abs(stamped - position) > source.rate // 1000:
                    start = stamped
            if start is None:
                raise InputError(f"{self._input.name}: its sound carries no timestamps; convert it to AAC or WAV")
            position = start + frame.samples
            low, high = max(start, cursor), min(position, last)
            if high > low:
                if low > cursor:  # the sound starts after the cut does, or pauses: silence until it plays
                    yield from encoded(resampler.resample(_silence(frame, low - cursor)))
                yield from encoded(resampler.resample(_samples(frame, low - start, high - start)))
                cursor = high
            if position >= last:
                break
        yield from encoded(resampler.resample(None))
        for packet in self.stream.encode(None):
            yield float(packet.pts * packet.time_base), packet

    def mux_until(self, seconds: float | None) -> None:
        """Mux the packets that start before `seconds` of the output (None: all that are left)."""
        while True:
            if self._next is None:
                self._next = next(self._packets, None)
                if self._next is None:
                    return
            time, packet = self._next
            if seconds is not None and time >= seconds:
                return
            packet.stream = self.stream
            self._output.mux(packet)
            self._next = None

    def close(self) -> None:
        self._input.close()


def _silence(like, count: int):
    """`count` samples of silence in the format, layout and rate of the audio frame `like`."""
    channels = len(like.layout.channels)
    shape = (channels, count) if like.format.is_planar else (1, count * channels)
    zero = 128 if like.format.name.startswith("u8") else 0  # unsigned 8-bit audio is silent at its middle
    array = np.full(shape, zero, dtype=like.to_ndarray().dtype)
    out = av.AudioFrame.from_ndarray(array, format=like.format.name, layout=like.layout.name)
    out.sample_rate = like.sample_rate
    return out


def _samples(frame, start: int, stop: int):
    """Samples [start, stop) of an audio frame, as a new frame."""

    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    piece = array[:, start:stop] if frame.format.is_planar else array[:, start * channels : stop * channels]
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), format=frame.format.name, layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    return out
