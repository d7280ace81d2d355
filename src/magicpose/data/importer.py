"""Real videos -> the dataset layout: frames, detected poses and meta, one folder per video.

Each video is decoded once for its frames and once by the pose detector (streaming both ways, so
long videos never sit in memory). A video whose folder already records the same source file
(path, size, modification time) and options is skipped: re-running an import only does new work.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from magicpose.data.layout import META, LayoutVideo, VideoFolderWriter
from magicpose.errors import InputError
from magicpose.media import VideoReader, image_folder_files, is_video_path
from magicpose.poses.detect import PoseDetector
from magicpose.poses.types import PoseSequence


def find_videos(source: str | os.PathLike) -> list[Path]:
    """A video file, or the video files and frame folders directly inside a folder (sorted)."""
    source = Path(source)
    if source.is_file():
        if not is_video_path(source):
            raise InputError(
                f"{source} is not a video file; pass an mp4, mov, avi, webm, mkv or gif, or a folder of them"
            )
        return [source]
    if not source.is_dir():
        raise InputError(f"video source not found: {source}")
    videos = [
        p
        for p in sorted(source.iterdir())
        if (p.is_file() and is_video_path(p)) or (p.is_dir() and image_folder_files(p))
    ]
    if not videos:
        raise InputError(f"{source} holds no videos (or folders of frames); pass a folder of video files")
    return videos


def video_id_for(path: Path) -> str:
    """A folder name for a video: its file name without suffix, unusual characters replaced."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem if path.is_file() else path.name).lstrip(".") or "video"


def _source_record(path: Path, max_side: int | None) -> dict:
    stat = path.stat()
    return {
        "source": "import",
        "source_path": str(path.resolve()),
        "source_bytes": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
        "max_side": max_side,
    }


def _is_cached(folder: Path, record: dict) -> bool:
    if not (folder / META).is_file():
        return False
    try:
        meta = LayoutVideo(folder).meta
    except (InputError, ValueError, KeyError):
        return False
    return all(meta.get(key) == value for key, value in record.items())


def _resize_factor(width: int, height: int, max_side: int | None) -> float:
    return 1.0 if not max_side or max(width, height) <= max_side else max_side / max(width, height)


def _scaled(poses: PoseSequence, factor: float, width: int, height: int) -> PoseSequence:
    """Poses under a resize by `factor`, in OpenCV's convention x' = (x + 0.5) * factor - 0.5."""
    offset = np.array([0.5 * factor - 0.5, 0.5 * factor - 0.5])
    frames = [pose.transformed(factor, offset) for pose in poses.frames]
    return PoseSequence(frames, width, height, poses.fps, poses.found)


def import_video(path: Path, root: Path, detector, *, max_side: int | None = None, split: str | None = None) -> Path:
    """Write one video's folder (frames resized so the longer side is at most `max_side`)."""
    poses = detector.detect_video(path, progress=True)
    with VideoReader(path) as reader:
        factor = _resize_factor(reader.width, reader.height, max_side)
        size = (max(1, round(reader.width * factor)), max(1, round(reader.height * factor)))
        record = _source_record(path, max_side)
        if split is not None:
            record["split"] = split
        with VideoFolderWriter(root, video_id_for(path), overwrite=True) as writer:
            for frame in reader:
                if factor != 1.0:
                    frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
                writer.add_frame(frame)
            if writer.count != len(poses):
                raise InputError(
                    f"{path}: decoded {writer.count} frames but the detector saw {len(poses)}; the file may be damaged"
                )
            if factor != 1.0:
                poses = _scaled(poses, factor, *size)
            return writer.finish(poses, meta=record)


def import_videos(
    source: str | os.PathLike,
    root: str | os.PathLike,
    *,
    detector=None,
    max_side: int | None = 512,
    split: str | None = None,
    progress: bool = True,
    failed: list[tuple[Path, str]] | None = None,
) -> list[Path]:
    """Import every video of `source` into the dataset folder `root`; returns the video folders.

    `detector` defaults to `magicpose.poses.detect.PoseDetector()` (MediaPipe Holistic, offline);
    anything with the same `detect_video(path, progress=...) -> PoseSequence` works. With a `failed` list,
    a video that cannot be imported (unreadable, nobody in it) is skipped and recorded there as
    (path, reason), so one bad file does not stop the others; without it, the first one raises.
    """
    root = Path(root)
    videos = find_videos(source)
    ids = [video_id_for(path) for path in videos]
    clashes = sorted({name for name in ids if ids.count(name) > 1})
    if clashes:
        raise InputError(f"several videos would share the folder name(s) {clashes}; rename them so their names differ")
    folders = []
    for path in tqdm(videos, desc="videos", unit="video", disable=not progress):
        folder = root / video_id_for(path)
        record = _source_record(path, max_side)
        if split is not None:
            record["split"] = split
        if _is_cached(folder, record):
            folders.append(folder)
            continue
        if detector is None:
            detector = PoseDetector()
        try:
            folders.append(import_video(path, root, detector, max_side=max_side, split=split))
        except InputError as error:
            if failed is None:
                raise
            failed.append((path, str(error)))
            tqdm.write(f"skipped {path}: {error}")
    return folders
