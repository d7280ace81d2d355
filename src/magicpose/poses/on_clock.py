"""A video's poses on a constant clock, each frame's pose near its time on the container's clock.

A pose file and an animation play at one constant rate, so a variable-frame-rate video (phones), or a GIF or
animated WebP with uneven delays, is put on a constant clock (`magicpose.timing.constant_rate_frames`): a
frame's pose is shown from the tick nearest its time, so the motion stays with the video's sound.
`pose extract` and `animate` both detect through `detect_on_clock`.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from magicpose.errors import InputError
from magicpose.media import DEFAULT_FOLDER_FPS, VideoReader
from magicpose.poses.types import PoseSequence
from magicpose.timing import constant_rate_frames, on_clock_note


@dataclass
class ClockedPoses:
    poses: PoseSequence  # one pose per tick of poses.fps
    start: float  # seconds into the source (its timeline, as `magicpose.audio` counts) where poses[0] shows
    note: str | None  # how a variable frame rate was put on the clock, in words (None: the rate is constant)


def start_frame(start: float, fps: float, count: int | None, source: Path, times=None, end=None) -> int:
    """The frame `start` seconds in: the one nearest it on the container's clock (`times`) when there is one."""
    if times is not None:
        if start >= end:
            raise InputError(
                f"--start {start:g} s is past the end of {source} ({len(times)} frames, {end:.2f} s); start earlier"
            )
        return int(np.argmin(np.abs(times - start)))
    first = round(start * fps)
    if count is not None and first >= count:
        raise InputError(
            f"--start {start:g} s is past the end of {source} ({count} frames, {count / fps:.2f} s); start earlier"
        )
    return first


def detect_on_clock(
    detector,
    source: str | os.PathLike,
    *,
    start: float = 0.0,
    max_frames: int | None = None,
    folder_fps: float = DEFAULT_FOLDER_FPS,
    person: str | int | None = None,
    progress: bool = True,
) -> ClockedPoses:
    """Poses of the video, animated image or image folder `source` from `start` seconds (at most `max_frames`),
    detected by `detector` (a `PoseDetector`), at the source's rate, or on a constant clock when it varies:
    only the frames the clock shows are detected."""
    source = Path(source)
    with VideoReader(source, folder_fps=folder_fps) as reader:
        rate, count = reader.fps, reader.frame_count
        times, end, variable = reader.times, reader.end, reader.variable
    first, picks = start_frame(start, rate, count, source, times, end), None
    where = first / rate if times is None else float(times[first])  # the time of the frame shown first
    if variable:  # the clock starts at `start`
        picks = constant_rate_frames(times, end, rate, start, max_frames)
        first, where = picks[0], start
    sequence = detector.detect_video(
        source,
        progress=progress,
        fps=rate,
        max_frames=max_frames if picks is None else picks[-1] + 1 - first,
        start_frame=first,
        **({} if person is None else {"person": person}),
    )
    if picks is None:
        return ClockedPoses(sequence, where, None)
    picks = [min(index - first, len(sequence) - 1) for index in picks]
    return ClockedPoses(_picked(sequence, picks), where, on_clock_note(times, picks, rate))


def _picked(sequence: PoseSequence, picks: list[int]) -> PoseSequence:
    """The poses of frames `picks`, with the followed person's per-frame record to match."""
    person = sequence.person
    if person and isinstance(person.get("boxes"), list):
        boxes, since = person["boxes"], person["first_frame"]
        first = next((tick for tick, index in enumerate(picks) if index >= since), 0)
        person = {**person, "boxes": [boxes[i] for i in picks], "first_frame": first}
    frames = [copy.deepcopy(sequence.frames[i]) for i in picks]
    found = np.asarray(sequence.found)[picks]
    return replace(sequence, frames=frames, found=found, person=person)
