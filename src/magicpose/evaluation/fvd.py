"""FVD: Frechet distance of I3D Kinetics-400 logits (Unterthiner et al., 2018).

``disco``: as DisCo's ``FVD-3DInception``, each whole video is one I3D input (224x224, [-1, 1])
and one sample. ``clean``: every complete 16-frame clip is one sample, the length FVD was defined on.
"""

from __future__ import annotations

import numpy as np
import torch

from magicpose.evaluation.i3d import InceptionI3d
from magicpose.evaluation.video_features import CLIP_LENGTH, split_into_clips, video_tensor

FVD_SIZE = 224


def fvd_features(
    model: InceptionI3d, frames: list[np.ndarray], protocol: str, size: int = FVD_SIZE, batch_size: int = 2
) -> np.ndarray:
    """I3D logits of one video: (1, 400) under ``disco`` (whole video), (clips, 400) under ``clean``."""
    video = video_tensor(frames, size) / 127.5 - 1
    if protocol == "disco":
        clips = [list(range(len(frames)))]
    else:
        clips = split_into_clips(len(frames), CLIP_LENGTH, pad_last=False)
    parameter = next(model.parameters())
    features = []
    for start in range(0, len(clips), batch_size):
        batch = torch.stack([video[:, clip] for clip in clips[start : start + batch_size]])
        features.append(model(batch.to(parameter.device, parameter.dtype)).float().cpu().numpy())
    return np.concatenate(features)
