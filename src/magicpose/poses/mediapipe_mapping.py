"""mediapipe Holistic landmarks -> the OpenPose layout (COCO-18 body, 21 + 21 hand, 68 + 2 face).

Pure functions on pixel arrays, so the mapping is testable without running mediapipe.
Holistic's `left_hand` / `right_hand` are the person's own sides, the same convention as OpenPose's
`hand_left` / `hand_right` (checked on real photos: Holistic's left hand lies at BlazePose's
LEFT_WRIST). Likewise BlazePose's and the face mesh's "left" are the person's left.

Confidence: BlazePose reports a per-landmark visibility, used as the body confidence; hand and
face landmarks have none, so present ones get 1. A point is present only if it lies inside the frame
(an OpenPose detector never reports points outside the image) and, for the body, its visibility
reaches `min_visibility` (BlazePose extrapolates joints it cannot see, e.g. legs below a portrait's
edge, with low visibility).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from magicpose.poses.types import NUM_BODY, NUM_FACE, NUM_HAND, Pose

# COCO-18 index -> BlazePose-33 index. The neck (COCO 1) has no BlazePose landmark: it is the
# shoulder midpoint (BlazePose 11 = left shoulder, 12 = right shoulder), as in OpenPose's own data.
NECK = 1
NECK_FROM_SHOULDERS = (11, 12)
BLAZEPOSE_TO_COCO18 = {
    0: 0,  # nose
    2: 12,  # right shoulder
    3: 14,  # right elbow
    4: 16,  # right wrist
    5: 11,  # left shoulder
    6: 13,  # left elbow
    7: 15,  # left wrist
    8: 24,  # right hip
    9: 26,  # right knee
    10: 28,  # right ankle
    11: 23,  # left hip
    12: 25,  # left knee
    13: 27,  # left ankle
    14: 5,  # right eye (BlazePose 4/6 are its inner/outer corners)
    15: 2,  # left eye (1/3 inner/outer)
    16: 8,  # right ear
    17: 7,  # left ear
}

# mediapipe's 21 hand landmarks are OpenPose's 21 hand keypoints in the same order: wrist, then
# thumb CMC-MCP-IP-tip, index MCP-PIP-DIP-tip, middle, ring, pinky.
HAND_TO_OPENPOSE = tuple(range(NUM_HAND))

# OpenPose / iBUG-68 face index -> face-mesh-468 index. 0-16 jaw from the person's right ear over
# the chin to the left ear, 17-21 right brow (outer to inner), 22-26 left brow (inner to outer),
# 27-30 nose bridge (top down), 31-35 nostrils (right to left), 36-41 right eye (outer corner,
# upper lid x2, inner corner, lower lid x2), 42-47 left eye (inner corner first), 48-59 outer lips
# from the right corner, 60-67 inner lips from the right corner. Mirrored mesh pairs were chosen for
# the two sides, so a frontal face maps symmetrically.
FACE_MESH_TO_OPENPOSE_68 = (
    127,
    234,
    93,
    132,
    58,
    136,
    150,
    176,
    152,
    400,
    379,
    365,
    288,
    361,
    323,
    454,
    356,  # jaw
    70,
    63,
    105,
    66,
    107,  # right brow
    336,
    296,
    334,
    293,
    300,  # left brow
    168,
    197,
    5,
    4,  # nose bridge
    75,
    97,
    2,
    326,
    305,  # nostrils
    33,
    160,
    158,
    133,
    153,
    144,  # right eye
    362,
    385,
    387,
    263,
    373,
    380,  # left eye
    61,
    40,
    37,
    0,
    267,
    270,
    291,
    321,
    314,
    17,
    84,
    91,  # outer lips
    78,
    81,
    13,
    311,
    308,
    402,
    14,
    178,  # inner lips
)

# OpenPose 68 / 69 are the right / left pupils. With `refine_face_landmarks` the mesh has 478
# points and 468 / 473 are the centres of the right / left iris; without it we use the eye
# contour's centre (OpenPose 36-41 / 42-47).
IRIS_CENTERS = (468, 473)
EYE_CONTOURS = (slice(36, 42), slice(42, 48))


@dataclass
class HolisticLandmarks:
    """One Holistic result in pixels; a part is None when Holistic did not find it.

    pose: (33, 4) x, y, z, visibility; face: (468 or 478, 3); hands: (21, 3). z is unused.
    """

    pose: np.ndarray | None = None
    face: np.ndarray | None = None
    left_hand: np.ndarray | None = None
    right_hand: np.ndarray | None = None

    @classmethod
    def from_results(cls, results, width: int, height: int) -> HolisticLandmarks:
        """Convert a `mp.solutions.holistic` result (normalised landmarks) to pixels."""

        def pixels(landmarks, with_visibility: bool = False):
            if landmarks is None:
                return None
            rows = [
                (p.x * width, p.y * height, p.z, p.visibility) if with_visibility else (p.x * width, p.y * height, p.z)
                for p in landmarks.landmark
            ]
            return np.asarray(rows, dtype=np.float64)

        return cls(
            pose=pixels(results.pose_landmarks, with_visibility=True),
            face=pixels(results.face_landmarks),
            left_hand=pixels(results.left_hand_landmarks),
            right_hand=pixels(results.right_hand_landmarks),
        )

    @classmethod
    def from_dict(cls, data: dict) -> HolisticLandmarks:
        """Read the layout of `reference/real_media/mediapipe_holistic_landmarks_images.json`."""
        return cls(
            **{
                name: None if data.get(name) is None else np.asarray(data[name], dtype=np.float64)
                for name in ("pose", "face", "left_hand", "right_hand")
            }
        )

    @property
    def empty(self) -> bool:
        return self.pose is None and self.face is None and self.left_hand is None and self.right_hand is None


def _inside(xy: np.ndarray, width: int, height: int) -> np.ndarray:
    return (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)


def map_body(pose33: np.ndarray | None, width: int, height: int, min_visibility: float = 0.3) -> np.ndarray:
    """BlazePose 33 (x, y, z, visibility) in pixels -> COCO-18 (x, y, confidence)."""
    body = np.zeros((NUM_BODY, 3))
    if pose33 is None:
        return body
    for coco, blaze in BLAZEPOSE_TO_COCO18.items():
        body[coco] = (pose33[blaze, 0], pose33[blaze, 1], pose33[blaze, 3])
    right, left = BLAZEPOSE_TO_COCO18[2], BLAZEPOSE_TO_COCO18[5]
    body[NECK, :2] = (pose33[right, :2] + pose33[left, :2]) / 2
    body[NECK, 2] = min(pose33[right, 3], pose33[left, 3])
    present = (body[:, 2] >= min_visibility) & _inside(body, width, height)
    body[~present] = 0.0
    return body


def map_hand(hand21: np.ndarray | None, width: int, height: int) -> np.ndarray:
    """mediapipe hand 21 -> OpenPose hand 21 (same order); confidence 1 inside the frame."""
    hand = np.zeros((NUM_HAND, 3))
    if hand21 is None:
        return hand
    hand[:, :2] = hand21[list(HAND_TO_OPENPOSE), :2]
    hand[:, 2] = _inside(hand, width, height).astype(np.float64)
    hand[hand[:, 2] <= 0] = 0.0
    return hand


def map_face(mesh: np.ndarray | None, width: int, height: int) -> np.ndarray:
    """Face mesh (468, or 478 with iris) -> OpenPose 68 face points + 2 pupils."""
    face = np.zeros((NUM_FACE, 3))
    if mesh is None:
        return face
    face[:68, :2] = mesh[list(FACE_MESH_TO_OPENPOSE_68), :2]
    for pupil, (iris, contour) in enumerate(zip(IRIS_CENTERS, EYE_CONTOURS)):
        face[68 + pupil, :2] = mesh[iris, :2] if len(mesh) > max(IRIS_CENTERS) else face[contour, :2].mean(axis=0)
    face[:, 2] = _inside(face, width, height).astype(np.float64)
    face[face[:, 2] <= 0] = 0.0
    return face


def holistic_to_pose(
    landmarks: HolisticLandmarks, width: int, height: int, min_visibility: float = 0.3
) -> Pose | None:
    """The OpenPose-layout pose of one Holistic result, or None if nothing of a person is present."""
    pose = Pose(
        body=map_body(landmarks.pose, width, height, min_visibility),
        left_hand=map_hand(landmarks.left_hand, width, height),
        right_hand=map_hand(landmarks.right_hand, width, height),
        face=map_face(landmarks.face, width, height),
    )
    return pose if len(pose.present_points()) else None
