"""When a video's frames show, as its container says, and how they sit on a constant-rate clock.

Times are seconds from the timeline's 0: the video stream's start, the same 0 `magicpose.audio` cuts
sound from, so a frame and its sound stay together. A constant rate is recognised through timestamp
rounding (GIF's 10 ms clock, Matroska's 1 ms); anything else is a variable rate, which
`constant_rate_frames` puts on a constant clock with every frame within half a tick of its time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import av
import numpy as np


@dataclass(frozen=True)
class Clock:
    """The frames' presentation times, when the last one stops, the rate and whether it varies."""

    times: np.ndarray
    end: float
    fps: float
    variable: bool


def packet_times(path: str | os.PathLike) -> tuple[np.ndarray, float, float] | None:
    """(presentation times, the last frame's duration, the clock's tick) of the first video stream of `path`,
    from its packets (no decoding); None when the container has no timestamps. Packets an edit list cuts
    away are not frames."""
    stamps = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.pts is None:
                    return None
                stamps.append((packet.pts, packet.duration or 0))
        except av.FFmpegError:  # a truncated or damaged file: the frames before the damage have their times
            pass
        if not stamps:
            return None
        stamps.sort()  # decoding order to presentation order
        origin = stream.start_time if stream.start_time is not None else stamps[0][0]
        base = stream.time_base  # multiplied before dividing: frame 6 of 15 fps is 0.4 s, not 0.39999999999999997
    times = (np.array([pts for pts, _ in stamps], dtype=np.float64) - origin) * base.numerator / base.denominator
    return times, float(stamps[-1][1] * base), float(base)


def clock(times: np.ndarray, last: float, tick: float, rates: list[float], fallback: float) -> Clock:
    """The rate the frames at `times` follow: the first of the container's `rates` they do, else the one
    they do follow, else (variable) a rate as fast as all but the briefest tenth of them, so few are dropped
    (the container's own when it is within 3 %, timestamps jitter; no faster than 60 fps unless most frames
    are). `last`: the last frame's duration (0: unknown)."""
    times = np.asarray(times, dtype=np.float64)
    count, slack = len(times), max(2 * tick, 0.005)  # a frame this near the clock is on it
    steps = np.arange(count)

    def follows(rate: float) -> bool:
        return rate > 0 and bool(np.abs(times - times[0] - steps / rate).max() <= slack)

    fps, variable = (rates or [fallback])[0], False
    if count > 1:
        span = times[-1] - times[0]
        rate = next((rate for rate in rates + ([(count - 1) / span] if span > 0 else []) if follows(rate)), None)
        if rate is not None:
            fps = rate
        else:
            intervals = np.diff(times)
            intervals = intervals[intervals > 0] if (intervals > 0).any() else np.array([1 / fallback])
            fast, usual = 1 / float(np.quantile(intervals, 0.1)), 1 / float(np.median(intervals))
            fast = min(fast, max(60.0, usual))
            fps, variable = next((rate for rate in rates if abs(rate - fast) <= 0.03 * fast), fast), True
    return Clock(times, float(times[-1] + (last if last > 0 else 1 / fps)), float(fps), variable)


def constant_rate_frames(times: np.ndarray, end: float, fps: float, start: float = 0.0, count: int | None = None):
    """The frame to show at each tick of a constant `fps` clock from `start` to `end` (seconds; at most
    `count` ticks): each frame starts on the tick nearest its time, within half a tick of its place against
    the sound. A frame shorter than a tick may be dropped, one longer repeated."""
    ticks = max(int(np.ceil((end - start) * fps - 1e-6)), 1)
    ticks = np.arange(ticks if count is None else min(ticks, count))
    shown = np.searchsorted(np.asarray(times, dtype=np.float64), start + (ticks + 0.5) / fps + 1e-9, side="right")
    return (shown - 1).clip(0, len(times) - 1).tolist()


def on_clock_note(times: np.ndarray, picks: list[int], fps: float) -> str:
    """What `constant_rate_frames` did, in words (for the run's summary line)."""
    intervals = np.diff(times)
    intervals = intervals[intervals > 0]
    rates = f"{1 / intervals.max():.3g}-{1 / intervals.min():.3g} fps" if len(intervals) else "variable"
    shown = set(picks)
    return (
        f"variable frame rate ({rates}) put on a constant {fps:.4g} fps clock, each frame within half a frame "
        f"of its time ({len(picks) - len(shown)} repeated, {max(picks) + 1 - min(picks) - len(shown)} dropped)"
    )
