"""One way to open any data source as a `VideoCollection`: training, validation and benchmarks all call
`open_collection`, so a source that one of them reads, every one of them reads."""

from __future__ import annotations

import os
from pathlib import Path

from magicpose.data.interface import VideoCollection
from magicpose.data.layout import META, LayoutDataset
from magicpose.data.puppet.videos import PuppetVideos
from magicpose.data.tiktok import TikTokDataset, is_tiktok_root
from magicpose.errors import InputError
from magicpose.media import image_folder_files, is_video_path

PUPPET = "puppet"


def open_collection(
    source: str | os.PathLike,
    split: str | None = None,
    *,
    size: int = 128,
    frames: int = 120,
    count: int | None = None,
) -> VideoCollection:
    """The videos of `source`, optionally of one split:

    - "puppet": the puppet world rendered on the fly (`size` x `size`, `frames` per video, at most
      `count` videos; split default "train");
    - a TikTok root (`train_set/` beside `pose_map_train_set/`; split default "train");
    - a dataset folder of our layout (`magicpose data prepare`; every split unless one is named).

    A video file, or a folder of videos, is not a dataset yet: the error says how to import it.
    """
    if str(source) == PUPPET:
        return PuppetVideos(split or "train", width=size, height=size, num_frames=frames, count=count)
    path = Path(source)
    if is_tiktok_root(path):
        return TikTokDataset(path, subset=split or "train")
    if path.is_dir() and any((folder / META).is_file() for folder in path.iterdir() if folder.is_dir()):
        return LayoutDataset(path, split=split)
    if _holds_raw_videos(path):
        raise InputError(
            f"{path} holds videos, not a dataset folder; import them first with "
            f"`magicpose data prepare videos {path} DATASET` and use DATASET as the source"
        )
    return LayoutDataset(path, split=split)  # its error says what is missing


def _holds_raw_videos(path: Path) -> bool:
    """A video file, or a folder with video files or folders of frames directly inside (what
    `data.importer.import_videos` takes)."""
    if path.is_file():
        return is_video_path(path)
    if not path.is_dir():
        return False
    return any((p.is_file() and is_video_path(p)) or (p.is_dir() and image_folder_files(p)) for p in path.iterdir())
