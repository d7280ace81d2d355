"""Training samples as the paper builds them: two frames of one video, cropped the same way.

`PairDataset` (stages 1 and 2) yields a reference frame, a target frame and the target's OpenPose
condition; `ClipDataset` (the motion-module stage) yields a reference frame and a clip of
consecutive targets. Both read any `VideoCollection`: a dataset folder, TikTok, or the puppet
world rendered on the fly. Sample `i` is a pure function of (seed, i), so every run, worker and
rank sees the same sample for the same index (ranks differ through the sampler's indices).

Tensors: images in [-1, 1] (the VAE's range), the pose condition in [0, 1] (the ControlNet
hint's range), masks in {0, 1}; all channels-first.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from magicpose.data.interface import FrameSample, VideoCollection, VideoRecord
from magicpose.data.puppet.videos import PuppetVideos
from magicpose.poses.augment import mask_face_and_hands
from magicpose.poses.render import draw_openpose
from magicpose.poses.types import Pose

CROPS = ("center", "random")


@dataclass(frozen=True)
class CropBox:
    """A square window of whole pixels: columns x0..x0+side-1, rows y0..y0+side-1."""

    x0: int
    y0: int
    side: int


def choose_crop(width: int, height: int, crop: str, rng: np.random.Generator, scale_range=(0.8, 1.0)) -> CropBox:
    """The centred largest square, or a random square of `scale_range` times the short side."""
    short = min(width, height)
    if crop == "center":
        return CropBox((width - short) // 2, (height - short) // 2, short)
    side = max(1, int(round(short * rng.uniform(*scale_range))))
    return CropBox(int(rng.integers(width - side + 1)), int(rng.integers(height - side + 1)), side)


def crop_image(image: np.ndarray, box: CropBox, size: int, interpolation: int | None = None) -> np.ndarray:
    """Cut `box` out of `image` and resize it to size x size (area averaging when shrinking, else bilinear)."""
    window = image[box.y0 : box.y0 + box.side, box.x0 : box.x0 + box.side]
    if interpolation is None:
        interpolation = cv2.INTER_AREA if size < box.side else cv2.INTER_LINEAR
    return cv2.resize(window, (size, size), interpolation=interpolation)


def crop_pose(pose: Pose, box: CropBox, size: int) -> Pose:
    """The same crop on keypoints, in OpenCV's resize convention (pixel centres at integers):
    x' = (x - x0 + 0.5) * size / side - 0.5; points leaving the square become missing."""
    factor = size / box.side
    moved = pose.transformed(factor, np.array([(0.5 - box.x0) * factor - 0.5, (0.5 - box.y0) * factor - 0.5]))
    for name in Pose.PARTS:
        points = moved.part(name)
        outside = (points[:, :2] < 0).any(1) | (points[:, :2] > size - 1).any(1)
        points[outside, 2] = 0.0
    return moved


def _to_signed(image: np.ndarray) -> torch.Tensor:
    # numpy, not torch, for the arithmetic: on tiny tensors torch's thread pool costs more than the work
    return torch.from_numpy(
        np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / np.float32(127.5) - np.float32(1.0)
    )


def _to_unit(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0))


class _FrameMaker:
    """Turns one `FrameSample` into tensors under a crop, with the face/hand masking augmentation."""

    def __init__(self, size: int, face_mask_probability: float, hand_mask_probability: float):
        self.size = size
        self.face_mask_probability = face_mask_probability
        self.hand_mask_probability = hand_mask_probability

    def image(self, sample: FrameSample, box: CropBox) -> torch.Tensor:
        return _to_signed(crop_image(sample.image, box, self.size))

    def pose_image(self, sample: FrameSample, box: CropBox, rng: np.random.Generator) -> torch.Tensor:
        """The target's OpenPose condition, drawn at the training size from the cropped keypoints."""
        if sample.pose is None:
            if sample.pose_map is None:
                raise ValueError("a frame has neither a pose nor a pose map")
            return _to_unit(crop_image(sample.pose_map, box, self.size))

        pose = crop_pose(sample.pose, box, self.size)
        pose = mask_face_and_hands(pose, rng, self.face_mask_probability, self.hand_mask_probability)
        return _to_unit(draw_openpose(pose, self.size, self.size))

    def mask(self, sample: FrameSample, box: CropBox) -> torch.Tensor | None:
        if sample.mask is None:
            return None
        cropped = crop_image(sample.mask.astype(np.uint8) * 255, box, self.size)
        return torch.from_numpy((cropped >= 128).astype(np.float32)[None])


def _check(videos: VideoCollection, crop: str) -> None:
    if len(videos) == 0:
        raise ValueError("the video collection is empty")
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")


class _VideoSamples(Dataset):
    """What pairs and clips share: crops, the frame maker, and item i as a pure function of (seed, i)."""

    def __init__(
        self,
        videos: VideoCollection,
        *,
        size: int = 128,
        crop: str = "center",
        crop_scale=(0.8, 1.0),
        face_mask_probability: float = 0.0,
        hand_mask_probability: float = 0.0,
        length: int | None = None,
        seed: int = 0,
    ):
        _check(videos, crop)
        self.videos, self.crop, self.crop_scale, self.seed = videos, crop, tuple(crop_scale), int(seed)
        self.maker = _FrameMaker(size, face_mask_probability, hand_mask_probability)
        self.length = int(length) if length is not None else _default_length(videos)

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return np.random.default_rng([self.seed, int(index)])


class PairDataset(_VideoSamples):
    """(reference, target) frame pairs of one video with the same crop, and the target's pose condition.

    Items: `reference`, `target` (3, S, S) in [-1, 1]; `pose_image` (3, S, S) in [0, 1]; `mask`
    (1, S, S) where the source knows it; `video` (index) and `frames` (the two frame indices).
    `length` defaults to the number of frames in the collection (capped at 100 000 for the puppet
    world's virtual videos).
    """

    def __getitem__(self, index: int) -> dict:
        rng = self._rng(index)
        video_index = int(rng.integers(len(self.videos)))
        video = self.videos[video_index]
        reference_index, target_index = _two_frames(video, rng)
        reference, target = video.sample(reference_index), video.sample(target_index)
        box = choose_crop(video.width, video.height, self.crop, rng, self.crop_scale)
        item = {
            "reference": self.maker.image(reference, box),
            "target": self.maker.image(target, box),
            "pose_image": self.maker.pose_image(target, box, rng),
            "video": video_index,
            "frames": torch.tensor([reference_index, target_index]),
        }
        mask = self.maker.mask(target, box)
        if mask is not None:
            item["mask"] = mask
        return item


class ClipDataset(_VideoSamples):
    """A reference frame and `clip_length` consecutive target frames (every `stride`-th) of one video.

    Items: `reference` (3, S, S); `target` (T, 3, S, S) in [-1, 1]; `pose_image` (T, 3, S, S) in
    [0, 1]; `mask` (T, 1, S, S) where known; `video`, `start`. Videos shorter than a clip are skipped.
    """

    def __init__(self, videos: VideoCollection, *, clip_length: int = 16, stride: int = 1, **options):
        super().__init__(videos, **options)
        self.clip_length, self.stride = int(clip_length), int(stride)
        self.span = (self.clip_length - 1) * self.stride + 1

    def __getitem__(self, index: int) -> dict:
        rng = self._rng(index)
        for _ in range(100):
            video_index = int(rng.integers(len(self.videos)))
            video = self.videos[video_index]
            if video.num_frames >= self.span:
                break
        else:
            raise ValueError(f"no video has the {self.span} frames a clip needs")
        start = int(rng.integers(video.num_frames - self.span + 1))
        box = choose_crop(video.width, video.height, self.crop, rng, self.crop_scale)
        reference = video.sample(int(rng.integers(video.num_frames)))
        samples = [video.sample(start + k * self.stride) for k in range(self.clip_length)]
        item = {
            "reference": self.maker.image(reference, box),
            "target": torch.stack([self.maker.image(s, box) for s in samples]),
            "pose_image": torch.stack([self.maker.pose_image(s, box, rng) for s in samples]),
            "video": video_index,
            "start": start,
        }
        masks = [self.maker.mask(s, box) for s in samples]
        if all(m is not None for m in masks):
            item["mask"] = torch.stack(masks)
        return item


def _two_frames(video: VideoRecord, rng: np.random.Generator) -> tuple[int, int]:
    """Two different frames where the video has two; a one-frame video pairs its frame with itself."""
    if video.num_frames < 2:
        return 0, 0
    first, second = rng.choice(video.num_frames, size=2, replace=False)
    return int(first), int(second)


def _default_length(videos: VideoCollection) -> int:
    if isinstance(videos, PuppetVideos):
        return min(100_000, len(videos))
    return sum(videos[i].num_frames for i in range(len(videos)))
