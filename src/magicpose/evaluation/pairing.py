"""Pair generated frames with their ground truth by (video, frame index), never by sorted position.

Two layouts are read, on either side independently:

* one sub-folder per video: ``DIR/VIDEO/anything_0012.png`` (the frame index is the last number
  in the file name);
* a flat folder: ``DIR/VIDEO_0012.png`` (video name, separator, frame index), as the field's
  evaluation folders are laid out.

The field's code sorts both folders and zips them, so one missing or extra frame shifts every
later pair. Here a frame is matched only to the frame with the same video and index; two files
claiming the same (video, index) are an error instead of a silent overwrite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from magicpose.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
_FRAME_NAME = re.compile(r"^(?P<video>.*?)[_\-. ]?(?P<index>\d+)\D*$")


@dataclass
class VideoPair:
    """Matched frames of one video: ``frames[i] = (index, generated path, ground-truth path)``."""

    name: str
    frames: list[tuple[int, Path, Path]] = field(default_factory=list)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def index_frames(root: str | Path) -> dict[tuple[str, int], Path]:
    """Map (video, frame index) -> file for every image under `root` (sub-folder or flat layout)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; pass a folder of frames (one sub-folder per video, or VIDEO_FRAME.png files)")
    frames: dict[tuple[str, int], Path] = {}
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    sources = [(folder.name, folder, True) for folder in subfolders if _images(folder)] or [(root.name, root, False)]
    for video, folder, per_video in sources:
        for path in _images(folder):
            match = _FRAME_NAME.match(path.stem)
            if match is None:
                raise InputError(f"{path}: no frame number in the file name; name frames like VIDEO_0001.png")
            # Bare frame numbers in a flat folder form one video, named alike on both sides.
            key = (video if per_video else (match["video"] or "video"), int(match["index"]))
            if key in frames:
                raise InputError(
                    f"{frames[key]} and {path} are both frame {key[1]} of video {key[0]!r}; keep one of them"
                )
            frames[key] = path
    if not frames:
        raise InputError(f"{root} holds no frames ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return frames


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
            f"(e.g. {shown}); name both sides alike (VIDEO/NNNN.png or VIDEO_NNNN.png)"
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
