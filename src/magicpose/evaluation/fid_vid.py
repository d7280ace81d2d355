"""FID-VID: Frechet distance of 3D ResNet-50 features of 16-frame clips (the field's "FVD-3DRN50").

``disco``: as DisCo's code, every video is cut into 16-frame clips (the last one padded with its
final frame), the clip features are averaged, and each *video* is one sample of the Gaussian.
``clean``: every complete clip is a sample (far more samples for a 2048-d covariance; a partial
last clip is dropped unless the video is shorter than one clip).
"""

from __future__ import annotations

import numpy as np
import torch

from magicpose.evaluation.resnet3d import ResNet3d
from magicpose.evaluation.video_features import CLIP_LENGTH, KINETICS_MEAN, split_into_clips, video_tensor

FID_VID_SIZE = 112


def fid_vid_features(
    model: ResNet3d, frames: list[np.ndarray], protocol: str, size: int = FID_VID_SIZE, batch_size: int = 4
) -> np.ndarray:
    """Feature vectors of one video: (1, D) under ``disco`` (clip mean), (clips, D) under ``clean``."""
    video = video_tensor(frames, size) - torch.from_numpy(KINETICS_MEAN).view(3, 1, 1, 1)
    clips = split_into_clips(len(frames), CLIP_LENGTH, pad_last=protocol == "disco")
    features = []
    for start in range(0, len(clips), batch_size):
        batch = torch.stack([video[:, clip] for clip in clips[start : start + batch_size]])
        parameter = next(model.parameters())
        features.append(model(batch.to(parameter.device, parameter.dtype)).float().cpu().numpy())
    stacked = np.concatenate(features)
    return stacked.mean(axis=0, keepdims=True) if protocol == "disco" else stacked
