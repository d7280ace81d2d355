"""Shared fixtures for the pose tests: the reference data beside the repository, synthetic poses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from magicpose.poses.types import Pose
from tests.reference_data import reference_path


def reference(*parts: str) -> Path:
    return reference_path(*parts)


# A standing person in a 512 x 512 frame, COCO-18 order.
STANDING_BODY = np.array(
    [
        [256, 100],
        [256, 150],
        [216, 150],
        [196, 210],
        [186, 265],
        [296, 150],
        [316, 210],
        [326, 265],
        [231, 270],
        [226, 350],
        [224, 430],
        [281, 270],
        [286, 350],
        [288, 430],
        [246, 90],
        [266, 90],
        [236, 95],
        [276, 95],
    ],
    dtype=np.float64,
)


def make_hand(wrist: np.ndarray, direction: float) -> np.ndarray:
    """A fan-shaped 21-point hand at `wrist`, fingers pointing along angle `direction` (radians)."""
    points = [wrist]
    for finger in range(5):
        angle = direction + (finger - 2) * 0.3
        for joint in range(1, 5):
            points.append(wrist + 8.0 * joint * np.array([np.cos(angle), np.sin(angle)]))
    return np.hstack([np.array(points), np.ones((21, 1))])


def make_face(center: np.ndarray, radius: float = 20.0) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, 70, endpoint=False)
    xy = center + radius * np.stack([np.cos(angles), 1.2 * np.sin(angles)], axis=1)
    return np.hstack([xy, np.ones((70, 1))])


def standing_pose(with_hands: bool = True, with_face: bool = True) -> Pose:
    body = np.hstack([STANDING_BODY, np.ones((18, 1))])
    return Pose(
        body=body,
        right_hand=make_hand(body[4, :2], np.pi / 2) if with_hands else None,
        left_hand=make_hand(body[7, :2], np.pi / 2) if with_hands else None,
        face=make_face(body[0, :2]) if with_face else None,
    )


@pytest.fixture
def standing() -> Pose:
    return standing_pose()


def shifted_frames(image: np.ndarray, count: int, step: int = 6, blank: tuple[int, ...] = ()) -> list[np.ndarray]:
    """A short "video" of a real photo sliding right by `step` px a frame; `blank` frames are black."""
    frames = []
    for index in range(count):
        frame = np.zeros_like(image)
        if index not in blank:
            shift = index * step
            frame[:, shift:] = image[:, : image.shape[1] - shift]
        frames.append(frame)
    return frames


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from magicpose.media import read_image

    return read_image(reference("real_media", "astronaut.png"))


@pytest.fixture(scope="session")
def astronaut_video(astronaut, tmp_path_factory) -> Path:
    """A 5-frame 256 x 256 mp4 at 12 fps of the astronaut sliding right, frame 2 black."""
    import cv2

    from magicpose.media import write_video

    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    path = tmp_path_factory.mktemp("video") / "astronaut.mp4"
    write_video(path, shifted_frames(small, 5, step=4, blank=(2,)), fps=12)
    return path
