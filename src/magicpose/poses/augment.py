"""The paper's pose augmentation (MagicPose, Table 3): random masking of face landmarks and hands.

Dropping the face or a hand from the condition now and then teaches the model to keep identity and
hands from the reference image when the driving pose has no (or bad) face and hand keypoints.
The official code declares face 0.2 and hands 0.5 but never applies them; here they are the defaults.
"""

from __future__ import annotations

import numpy as np

from magicpose.poses.types import Pose

FACE_PROBABILITY = 0.2
HAND_PROBABILITY = 0.5


def mask_face_and_hands(
    pose: Pose,
    rng: np.random.Generator,
    face_probability: float = FACE_PROBABILITY,
    hand_probability: float = HAND_PROBABILITY,
) -> Pose:
    """A copy of `pose` with the face dropped with `face_probability` and each hand dropped
    independently with `hand_probability`. Dropped points become (0, 0, 0), i.e. missing.

    The body is never masked. Draws exactly three numbers from `rng` per call (face, left hand,
    right hand), whether or not a part is present, so runs are reproducible from the seed alone.
    """
    for name, probability in (("face_probability", face_probability), ("hand_probability", hand_probability)):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {probability}")
    draws = rng.random(3)
    out = pose.copy()
    for part, draw, probability in zip(
        ("face", "left_hand", "right_hand"), draws, (face_probability, hand_probability, hand_probability)
    ):
        if draw < probability:
            out.part(part)[:] = 0.0
    return out
