"""Framing: how a photo and its poses map into the output frame (the same crop and resize for both)."""

from __future__ import annotations

import numpy as np
import PIL.Image

from magicpose.poses.types import Pose, PoseSequence


def centre_crop_box(width: int, height: int, aspect: float) -> tuple[float, float, float, float]:
    """(left, top, crop_width, crop_height) of the largest centred box with width/height = aspect."""
    if width / height > aspect:
        crop_width, crop_height = height * aspect, float(height)
    else:
        crop_width, crop_height = float(width), width / aspect
    return (width - crop_width) / 2, (height - crop_height) / 2, crop_width, crop_height


def fit_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre-crop to the aspect of `size` = (width, height), then resize (Lanczos)."""
    left, top, crop_width, crop_height = centre_crop_box(image.shape[1], image.shape[0], size[0] / size[1])
    box = (round(left), round(top), round(left + crop_width), round(top + crop_height))
    return np.asarray(PIL.Image.fromarray(image).resize(size, PIL.Image.LANCZOS, box=box))


def fit_pose(pose: Pose, source_size: tuple[int, int], size: tuple[int, int]) -> Pose:
    """Map a pose through the same centre crop and resize as `fit_image`."""
    left, top, crop_width, _ = centre_crop_box(source_size[0], source_size[1], size[0] / size[1])
    scale = size[0] / crop_width
    return pose.transformed(scale, np.array([-left * scale, -top * scale]))


def fit_poses(sequence: PoseSequence, size: tuple[int, int]) -> PoseSequence:
    """`fit_pose` for every frame (the driving poses when they are not aligned)."""
    frames = [fit_pose(pose, sequence.size, size) for pose in sequence.frames]
    return PoseSequence(frames, size[0], size[1], sequence.fps, sequence.found)
