"""Fill frames where the detector found nobody, so every frame of a video has a pose to render."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from magicpose.poses.types import Pose

DEFAULT_MAX_INTERPOLATION_GAP = 12


def _blend(before: Pose, after: Pose, weight: float) -> Pose:
    """(1 - w) * before + w * after for points present in both; points present in only one keep
    that one's values, so a hand seen on one side of the gap is held rather than dropped."""
    parts = {}
    for name in Pose.PARTS:
        a, b = before.part(name), after.part(name)
        both = (a[:, 2] > 0) & (b[:, 2] > 0)
        out = np.where((a[:, 2] > 0)[:, None], a, b) if weight < 0.5 else np.where((b[:, 2] > 0)[:, None], b, a)
        out = out.copy()
        out[both] = (1 - weight) * a[both] + weight * b[both]
        parts[name] = out
    return Pose(**parts)


def fill_missing(
    poses: Sequence[Pose | None], max_gap: int = DEFAULT_MAX_INTERPOLATION_GAP
) -> tuple[list[Pose], np.ndarray]:
    """Replace None entries; returns (poses, found) where found marks the detected frames.

    Gaps of at most `max_gap` frames between two detections are interpolated linearly; longer
    gaps (the person left the frame) hold the nearest detection instead of sliding a ghost across
    the frame, and leading/trailing gaps hold the first/last detection.
    Raises ValueError if no frame has a pose.
    """
    found = np.array([pose is not None for pose in poses], dtype=bool)
    if not found.any():
        raise ValueError("no frame has a pose to fill from")
    indices = np.flatnonzero(found)
    filled: list[Pose] = []
    for index, pose in enumerate(poses):
        if pose is not None:
            filled.append(pose.copy())
            continue
        previous = indices[indices < index]
        following = indices[indices > index]
        if len(previous) == 0 or len(following) == 0:
            filled.append(
                poses[(following if len(previous) == 0 else previous)[0 if len(previous) == 0 else -1]].copy()
            )
            continue
        start, end = previous[-1], following[0]
        weight = (index - start) / (end - start)
        if end - start - 1 <= max_gap:
            filled.append(_blend(poses[start], poses[end], weight))
        else:
            filled.append(poses[start if weight < 0.5 else end].copy())
    return filled, found
