"""Pair generated frames with their ground truth by (video, frame index), never by sorted position.

Each side may be laid out in any of these ways (mixed freely between the two sides):

* one sub-folder per video: ``DIR/VIDEO/anything_0012.png`` (the frame index is the last number
  in the file name), including this project's dataset layout ``DIR/VIDEO/frames/000012.png``;
* a flat folder: ``DIR/VIDEO_0012.png`` (video name, separator, frame index), as the field's
  evaluation folders are laid out;
* one video file per video: ``DIR/VIDEO.mp4`` (as ``magicpose animate`` writes), frames
  numbered from 0 in decoding order.

The field's code sorts both folders and zips them, so one missing or extra frame shifts every
later pair. Here a frame is matched only to the frame with the same video and index; two files
claiming the same (video, index) are an error instead of a silent overwrite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
from PIL import Image

from magicpose.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".gif"}
_FRAME_NAME = re.compile(r"^(?P<video>.*?)[_\-. ]?(?P<index>\d+)\D*$")


class Frame(NamedTuple):
    """An image file (``position`` None) or the ``position``-th frame of a video file."""

    path: Path
    position: int | None = None

    def __str__(self) -> str:
        return str(self.path) if self.position is None else f"{self.path}[frame {self.position}]"


@dataclass
class VideoPair:
    """Matched frames of one video: ``frames[i] = (index, generated frame, ground-truth frame)``."""

    name: str
    frames: list[tuple[int, Frame, Frame]] = field(default_factory=list)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _video_frame_count(path: Path) -> int:

    try:
        with av.open(str(path)) as container:
            return sum(1 for _ in container.decode(video=0))
    except (av.error.FFmpegError, IndexError) as error:
        raise InputError(f"cannot read video {path} ({error}); pass frames or an mp4 that plays") from error


def index_frames(root: str | Path) -> dict[tuple[str, int], Frame]:
    """Map (video, frame index) -> frame for everything under `root` (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(
            f"{root} is not a folder; pass a folder of frames (one sub-folder per video, or VIDEO_FRAME.png files)"
        )
    frames: dict[tuple[str, int], Frame] = {}

    def add(key: tuple[str, int], frame: Frame) -> None:
        if key in frames:
            raise InputError(
                f"{frames[key]} and {frame} are both frame {key[1]} of video {key[0]!r}; keep one of them"
            )
        frames[key] = frame

    def add_images(folder: Path, video: str | None) -> None:
        for path in _images(folder):
            match = _FRAME_NAME.match(path.stem)
            if match is None:
                raise InputError(f"{path}: no frame number in the file name; name frames like VIDEO_0001.png")
            # Bare frame numbers in a flat folder form one video, named alike on both sides.
            add((video or match["video"] or "video", int(match["index"])), Frame(path))

    for entry in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        if entry.is_dir():
            add_images(entry / "frames" if (entry / "frames").is_dir() else entry, entry.name)
        elif entry.suffix.lower() in VIDEO_SUFFIXES:
            for position in range(_video_frame_count(entry)):
                add((entry.stem, position), Frame(entry, position))
    add_images(root, None)
    if not frames:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))
        raise InputError(f"{root} holds no frames or videos ({suffixes})")
    return frames


def read_frames(frames: list[Frame]) -> list[np.ndarray]:
    """uint8 RGB arrays of the given frames; each video file is decoded once."""
    decoded: dict[Path, list[np.ndarray]] = {}
    images = []
    for frame in frames:
        if frame.position is None:
            with Image.open(frame.path) as image:
                images.append(np.asarray(image.convert("RGB")))
            continue
        if frame.path not in decoded:
            with av.open(str(frame.path)) as container:
                decoded[frame.path] = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        images.append(decoded[frame.path][frame.position])
    return images


def pair_frames(generated: str | Path, ground_truth: str | Path) -> tuple[list[VideoPair], list[str]]:
    """Matched videos in name order, and warnings about ground-truth frames nothing was generated for.

    A generated frame without ground truth is an error: its score could not be computed, and it
    usually means the two folders follow different names.
    """
    generated_frames, reference_frames = index_frames(generated), index_frames(ground_truth)
    orphans = sorted(set(generated_frames) - set(reference_frames))
    if orphans:
        shown = ", ".join(str(generated_frames[key]) for key in orphans[:3])
        raise InputError(
            f"{len(orphans)} generated frame(s) have no ground truth with the same video and frame number "
            f"(e.g. {shown}); name both sides alike (VIDEO/NNNN.png, VIDEO_NNNN.png or VIDEO.mp4)"
        )
    videos: dict[str, VideoPair] = {}
    for video, index in sorted(generated_frames):
        pair = videos.setdefault(video, VideoPair(video))
        pair.frames.append((index, generated_frames[video, index], reference_frames[video, index]))
    warnings = []
    unmatched = sorted(set(reference_frames) - set(generated_frames))
    if unmatched:
        names = sorted({video for video, _ in unmatched})
        warnings.append(
            f"{len(unmatched)} ground-truth frame(s) have no generated frame and are not scored "
            f"(videos: {', '.join(names[:5])}{'...' if len(names) > 5 else ''})"
        )
    return list(videos.values()), warnings
