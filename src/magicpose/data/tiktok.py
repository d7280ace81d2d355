"""The TikTok dataset as the official MagicDance code lays it out, read through the shared interface.

    ROOT/train_set/VIDEO/0001.png             frames
    ROOT/pose_map_train_set/VIDEO/0001.png    the rendered OpenPose condition of each frame

(`val_set`/`test_set` with their `pose_map_*` folders likewise.) There are no keypoints, only pose
maps, so samples carry `pose_map` instead of `pose`, and the face/hand masking augmentation,
which needs keypoints, cannot be applied to them.
"""

from __future__ import annotations

import os
from pathlib import Path

from magicpose.data.interface import FrameSample, VideoCollection, VideoRecord
from magicpose.errors import InputError
from magicpose.media import image_folder_files, read_image


def is_tiktok_root(path: str | os.PathLike) -> bool:
    """Whether `path` holds at least one `X_set` folder beside its `pose_map_X_set`."""
    path = Path(path)
    if not path.is_dir():
        return False
    return any(
        (path / f"pose_map_{p.name}").is_dir() for p in path.glob("*_set") if not p.name.startswith("pose_map_")
    )


class TikTokVideo(VideoRecord):
    """Frames that have a pose map of the same file name; frames without one are left out."""

    def __init__(self, frames_folder: Path, pose_folder: Path, fps: float):
        self.video_id = frames_folder.name
        self.frame_files = [f for f in image_folder_files(frames_folder) if (pose_folder / f.name).is_file()]
        self.pose_files = [pose_folder / f.name for f in self.frame_files]
        self.num_frames = len(self.frame_files)
        self.fps = fps
        self.meta = {"source": "tiktok", "folder": str(frames_folder)}
        if self.num_frames:
            first = read_image(self.frame_files[0])
            self.height, self.width = first.shape[:2]
        else:
            self.width = self.height = 0

    def sample(self, index: int) -> FrameSample:
        image = read_image(self.frame_files[index])
        pose_map = read_image(self.pose_files[index])
        if pose_map.shape != image.shape:
            raise InputError(
                f"{self.pose_files[index]} is {pose_map.shape[1]}x{pose_map.shape[0]} but its frame is "
                f"{image.shape[1]}x{image.shape[0]}; pose maps must be rendered at the frame size"
            )
        return FrameSample(image=image, pose_map=pose_map)


class TikTokDataset(VideoCollection):
    """`ROOT/{subset}_set/VIDEO/*.png` with `ROOT/pose_map_{subset}_set/VIDEO/*.png` (TikTok clips run at 30 fps)."""

    def __init__(self, root: str | os.PathLike, subset: str = "train", fps: float = 30.0):
        root = Path(root)
        frames_root, poses_root = root / f"{subset}_set", root / f"pose_map_{subset}_set"
        if not frames_root.is_dir() or not poses_root.is_dir():
            raise InputError(
                f"{root} has no {frames_root.name}/ with {poses_root.name}/; "
                "pass the TikTok root folder and a subset it has"
            )
        videos = [
            TikTokVideo(folder, poses_root / folder.name, fps)
            for folder in sorted(frames_root.iterdir())
            if folder.is_dir()
        ]
        self.videos = [video for video in videos if video.num_frames > 0]
        if not self.videos:
            raise InputError(
                f"no frames with pose maps under {frames_root}; each frame needs a pose map of the same name"
            )

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> TikTokVideo:
        return self.videos[index]
