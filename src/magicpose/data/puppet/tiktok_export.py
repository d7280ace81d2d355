"""Write puppet videos in the TikTok dataset's layout, so the TikTok protocol can run on data whose
ground truth is known.

    ROOT/{subset}_set/VIDEO/0001.png            frames, numbered from 1 as the TikTok dataset is
    ROOT/pose_map_{subset}_set/VIDEO/0001.png   their OpenPose conditions, rendered at the frame size

As in the real dataset there are no keypoints, masks or backgrounds: only frames and pose maps.
"""

from __future__ import annotations

import os
from pathlib import Path

from tqdm import tqdm

from magicpose.data.puppet.world import PuppetVideo, video_spec
from magicpose.files import atomic_folder
from magicpose.media import write_image


def frame_name(index: int) -> str:
    """The TikTok dataset's name of frame `index` (0-based): 0001.png, 0002.png, ..."""
    return f"{index + 1:04d}.png"


def export_tiktok_video(video: PuppetVideo, root: str | os.PathLike, subset: str = "test") -> Path:
    """One video's frames and pose maps; returns its frames folder.

    The pose maps are written first and the frames folder last, each whole or not at all: a frames
    folder that exists is complete and has its pose maps, so an interrupted export resumes cleanly.
    """
    root, name = Path(root), video.spec.video_id
    frames = [video.frame(index) for index in range(len(video))]
    for folder, images in (
        (root / f"pose_map_{subset}_set" / name, [frame.condition() for frame in frames]),
        (root / f"{subset}_set" / name, [frame.image for frame in frames]),
    ):
        with atomic_folder(folder, overwrite=True) as temporary:
            for index, image in enumerate(images):
                write_image(temporary / frame_name(index), image)
    return root / f"{subset}_set" / name


def export_tiktok_split(
    root: str | os.PathLike,
    split: str,
    count: int,
    *,
    start: int = 0,
    subset: str | None = None,
    progress: bool = True,
    **options,
) -> list[Path]:
    """Videos `start` .. `start + count - 1` of a puppet split as `ROOT/{subset}_set` (subset: the split's
    name by default); videos already there are kept (resumable). `options`: `video_spec`'s (size, frames...)."""
    subset = subset or split
    folders = []
    for index in tqdm(range(start, start + count), desc=f"puppets ({split}, TikTok layout)", disable=not progress):
        spec = video_spec(split, index, **options)
        folder = Path(root) / f"{subset}_set" / spec.video_id
        if not folder.is_dir():
            folder = export_tiktok_video(PuppetVideo(spec), root, subset)
        folders.append(folder)
    return folders
