"""Frames -> network inputs for the feature-based metrics (FID, FID-VID, FVD).

Resizing follows clean-fid's "clean" resizer, which the field's code (DisCo) uses for all three:
every channel is resized as a float image with PIL's antialiased bicubic filter, clipped to
[0, 255], and not re-quantised.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

CLIP_LENGTH = 16
# Kinetics RGB mean of kenshohara/3D-ResNets-PyTorch, subtracted from [0, 255] pixels.
KINETICS_MEAN = np.array([114.7748, 107.7354, 99.4750], dtype=np.float32)


def clean_resize(frame: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (size, size, 3) in [0, 255], per-channel float bicubic (clean-fid)."""
    channels = [
        np.asarray(Image.fromarray(frame[..., c].astype(np.float32), mode="F").resize((size, size), Image.BICUBIC))
        for c in range(frame.shape[-1])
    ]
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.float32)


def image_batch(frames: list[np.ndarray], size: int) -> torch.Tensor:
    """uint8 frames -> (B, 3, size, size) float in [0, 1]."""
    resized = np.stack([clean_resize(f, size) for f in frames])
    return torch.from_numpy(resized).permute(0, 3, 1, 2) / 255.0


def split_into_clips(count: int, length: int = CLIP_LENGTH, pad_last: bool = True) -> list[list[int]]:
    """Frame indices of consecutive non-overlapping clips of `length` frames.

    With `pad_last`, a final partial clip is completed by repeating the last frame (DisCo's FID-VID);
    otherwise it is dropped, unless the video is shorter than one clip (then it is padded).
    """
    if count <= 0:
        return []
    clips = [list(range(start, min(start + length, count))) for start in range(0, count, length)]
    if len(clips[-1]) < length and (pad_last or len(clips) == 1):
        clips[-1] += [count - 1] * (length - len(clips[-1]))
    return [clip for clip in clips if len(clip) == length]


def video_tensor(frames: list[np.ndarray], size: int) -> torch.Tensor:
    """uint8 frames -> (3, T, size, size) float in [0, 255]."""
    resized = np.stack([clean_resize(f, size) for f in frames])
    return torch.from_numpy(resized).permute(3, 0, 1, 2)
