"""The 21 OpenPose hand points of a puppet hand: wrist, then thumb, index, middle, ring, little finger (4 each).

Hand frame: origin at the wrist, x along the hand (wrist to middle knuckle), y towards the thumb,
unit = the hand's length (wrist to the middle fingertip). Curling a finger is seen from the front,
so it mostly shortens the finger (it points at the camera) and bends it a little in the image plane.
"""

from __future__ import annotations

import numpy as np

# Knuckle (MCP) positions and segment lengths per finger, as fractions of the hand length.
_KNUCKLES = np.array([[0.12, 0.16], [0.47, 0.15], [0.5, 0.04], [0.47, -0.07], [0.42, -0.17]])
_SEGMENTS = np.array(
    [[0.17, 0.14, 0.12], [0.21, 0.13, 0.1], [0.23, 0.15, 0.11], [0.21, 0.14, 0.1], [0.17, 0.11, 0.09]]
)
_SPLAY = np.array([0.75, 0.18, 0.0, -0.15, -0.3])  # finger direction (radians) at spread 1


def hand_landmarks(
    wrist: np.ndarray, direction: float, length: float, thumb_side: float, curl: float, spread: float
) -> np.ndarray:
    """(21, 3) pixel hand points with confidence 1.

    `direction`: angle of the hand axis in the image (radians, atan2 convention, y down); `thumb_side`:
    +1 or -1, which side of the axis the thumb lies on (mirrors the hand); `curl` in [0, 1] (0 open,
    1 fist); `spread` in [0, 1].
    """
    points = np.zeros((21, 2))
    for finger in range(5):
        base = _KNUCKLES[finger].copy()
        angle = _SPLAY[finger] * (0.4 + 0.8 * spread)
        bend = curl * (0.5 if finger == 0 else 1.0)
        points[1 + 4 * finger] = base
        position = base
        for joint in range(3):
            angle_here = angle - 0.35 * bend * (joint + 1) * np.sign(_SPLAY[finger] + 1e-3)
            foreshortening = np.cos(min(1.45, 1.1 * bend * (joint + 1)))
            step = _SEGMENTS[finger, joint] * foreshortening
            position = position + step * np.array([np.cos(angle_here), np.sin(angle_here)])
            points[2 + 4 * finger + joint] = position
    points[:, 1] *= thumb_side
    cos, sin = np.cos(direction), np.sin(direction)
    rotation = np.array([[cos, sin], [-sin, cos]])
    out = np.ones((21, 3))
    out[:, :2] = np.asarray(wrist) + length * (points @ rotation)
    return out
