"""The pose of one person in one frame, and a sequence of them.

Layout follows OpenPose: COCO-18 body, 21 points per hand, 70 face points (68 + 2 pupils).
Every point is (x, y, confidence) in pixels of the frame; confidence <= 0 means "missing".
Parts are always full-size arrays so that maths on them (alignment, masking) needs no special
cases; a part whose points are all missing is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NUM_BODY = 18
NUM_HAND = 21
NUM_FACE = 70

BODY_NAMES = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)


def _points(array, count: int, name: str) -> np.ndarray:
    if array is None:
        return np.zeros((count, 3), dtype=np.float64)
    array = np.asarray(array, dtype=np.float64)
    if array.size == 0:
        return np.zeros((count, 3), dtype=np.float64)
    if array.ndim == 1:
        array = array.reshape(-1, 3)
    if array.shape != (count, 3):
        raise ValueError(f"{name} must have {count} points of (x, y, confidence), got shape {array.shape}")
    return array.copy()


@dataclass
class Pose:
    """One person: arrays of (x, y, confidence) in pixels; confidence <= 0 marks a missing point."""

    body: np.ndarray = field(default_factory=lambda: np.zeros((NUM_BODY, 3)))
    left_hand: np.ndarray = field(default_factory=lambda: np.zeros((NUM_HAND, 3)))
    right_hand: np.ndarray = field(default_factory=lambda: np.zeros((NUM_HAND, 3)))
    face: np.ndarray = field(default_factory=lambda: np.zeros((NUM_FACE, 3)))

    def __post_init__(self):
        self.body = _points(self.body, NUM_BODY, "body")
        self.left_hand = _points(self.left_hand, NUM_HAND, "left_hand")
        self.right_hand = _points(self.right_hand, NUM_HAND, "right_hand")
        self.face = _points(self.face, NUM_FACE, "face")

    PARTS = ("body", "left_hand", "right_hand", "face")

    def part(self, name: str) -> np.ndarray:
        if name not in self.PARTS:
            raise KeyError(f"unknown pose part {name!r}; expected one of {self.PARTS}")
        return getattr(self, name)

    def has(self, name: str) -> bool:
        """Whether any point of the part is present."""
        return bool((self.part(name)[:, 2] > 0).any())

    def copy(self) -> Pose:
        return Pose(self.body, self.left_hand, self.right_hand, self.face)

    def transformed(self, scale: float | np.ndarray, offset: np.ndarray) -> Pose:
        """x' = scale * x + offset for every present point; missing points keep their values."""
        out = self.copy()
        for name in self.PARTS:
            points = out.part(name)
            present = points[:, 2] > 0
            points[present, :2] = points[present, :2] * scale + np.asarray(offset, dtype=np.float64)
        return out

    def present_points(self) -> np.ndarray:
        """All present (x, y) points of all parts, shape (K, 2)."""
        stacked = np.concatenate([self.part(name) for name in self.PARTS])
        return stacked[stacked[:, 2] > 0, :2]


@dataclass
class PoseSequence:
    """Poses of one person over the frames of a video.

    `found[i]` is False where the detector found nobody in frame i; such frames hold a filled-in
    pose (held or interpolated) so that every frame can be rendered. `person` says whom a video's
    detector followed when it can tell (`magicpose.poses.tracking.person_record`): how the person was
    chosen, on which frame, among how many, and their box in every frame; None when unknown.
    """

    frames: list[Pose]
    width: int
    height: int
    fps: float = 30.0
    found: np.ndarray | None = None
    person: dict | None = None

    def __post_init__(self):
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"frame size must be positive, got {self.width}x{self.height}")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if self.found is None:
            self.found = np.ones(len(self.frames), dtype=bool)
        self.found = np.asarray(self.found, dtype=bool)
        if len(self.found) != len(self.frames):
            raise ValueError(f"found has {len(self.found)} entries for {len(self.frames)} frames")

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Pose:
        return self.frames[index]

    @property
    def missing(self) -> int:
        """Number of frames where nobody was detected (their poses are filled in)."""
        return int((~self.found).sum())

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height
