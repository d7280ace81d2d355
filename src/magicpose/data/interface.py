"""The reading interface every data source shares: a `VideoCollection` of `VideoRecord`s whose frames
come as `FrameSample`s. Our dataset layout (`layout.py`), the TikTok layout (`tiktok.py`) and the puppet
world (`puppet/videos.py`) implement it; training pairs and clips (`pairs.py`) read only this interface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from magicpose.poses.types import Pose


@dataclass
class FrameSample:
    """One frame as training and evaluation see it; fields a source does not know are None.

    `pose_map` is a ready-made condition image for sources that have no keypoints (TikTok).
    """

    image: np.ndarray  # (H, W, 3) uint8 RGB
    pose: Pose | None = None
    pose_map: np.ndarray | None = None  # (H, W, 3) uint8 RGB
    mask: np.ndarray | None = None  # (H, W) bool
    parts: np.ndarray | None = None  # (H, W) uint8


class VideoRecord:
    """One video of a collection: its size, length, and frames on demand."""

    video_id: str
    num_frames: int
    fps: float
    width: int
    height: int
    meta: dict

    def sample(self, index: int) -> FrameSample:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.num_frames


class VideoCollection:
    """A list of videos (a dataset folder, the TikTok dataset, or the puppet world)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> VideoRecord:
        raise NotImplementedError
