"""Render poses to the ControlNet-OpenPose condition image, pixel-identical to the official annotator.

The official drawer is ControlNet 1.1's `annotator/openpose/util.py` with the `draw_pose`
composition MagicDance trains and samples with (body + hands + face). Its conventions, each of
which changes pixels, are written out in `shared/reference/openpose_render/README.md`:

* coordinates reach the drawer normalised (x / W) and are multiplied back by W; bodies in float64,
  hands and faces normalised in float32 (`_body_pixel`, `_hand_face_pixel` copy that round trip so
  integer detector output truncates exactly as it does there);
* every pixel coordinate is Python `int()`, which truncates toward zero;
* draw order: all limbs of every person, dim the canvas to 60 %, all body joints, all hands
  (each person's left then right), all faces;
* OpenCV LINE_8 shapes with fixed pixel sizes (they do not scale with the canvas).

Colours are RGB: the canvas is saved with PIL, so (255, 0, 0) is red.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import cv2
import numpy as np

from magicpose.poses.types import Pose

# 17 limbs as COCO-18 index pairs; limb i is drawn in JOINT_COLORS[i]. The official list has two
# more (shoulder-ear) but its loop stops at 17, so they are never drawn.
LIMBS = (
    (1, 2),
    (1, 5),
    (2, 3),
    (3, 4),
    (5, 6),
    (6, 7),
    (1, 8),
    (8, 9),
    (9, 10),
    (1, 11),
    (11, 12),
    (12, 13),
    (1, 0),
    (0, 14),
    (14, 16),
    (0, 15),
    (15, 17),
)

JOINT_COLORS = (
    (255, 0, 0),
    (255, 85, 0),
    (255, 170, 0),
    (255, 255, 0),
    (170, 255, 0),
    (85, 255, 0),
    (0, 255, 0),
    (0, 255, 85),
    (0, 255, 170),
    (0, 255, 255),
    (0, 170, 255),
    (0, 85, 255),
    (0, 0, 255),
    (85, 0, 255),
    (170, 0, 255),
    (255, 0, 255),
    (255, 0, 170),
    (255, 0, 85),
)

HAND_EDGES = (
    (0, 1),
    (1, 2),
    (2, 3),
    (3, 4),
    (0, 5),
    (5, 6),
    (6, 7),
    (7, 8),
    (0, 9),
    (9, 10),
    (10, 11),
    (11, 12),
    (0, 13),
    (13, 14),
    (14, 15),
    (15, 16),
    (0, 17),
    (17, 18),
    (18, 19),
    (19, 20),
)

# hsv_to_rgb(e / 20, 1, 1) * 255 as OpenCV rounds it when given the float colour.
HAND_EDGE_COLORS = (
    (255, 0, 0),
    (255, 77, 0),
    (255, 153, 0),
    (255, 229, 0),
    (204, 255, 0),
    (128, 255, 0),
    (51, 255, 0),
    (0, 255, 25),
    (0, 255, 102),
    (0, 255, 179),
    (0, 255, 255),
    (0, 178, 255),
    (0, 102, 255),
    (0, 25, 255),
    (51, 0, 255),
    (128, 0, 255),
    (204, 0, 255),
    (255, 0, 230),
    (255, 0, 153),
    (255, 0, 77),
)

STICK_HALF_WIDTH = 4
JOINT_RADIUS = 4
LIMB_DIM = 0.6
HAND_LINE_THICKNESS = 2
HAND_POINT_RADIUS = 4
HAND_POINT_COLOR = (0, 0, 255)
FACE_POINT_RADIUS = 3
FACE_POINT_COLOR = (255, 255, 255)
# Hand and face points are drawn only if their truncated pixel is > 0.01, i.e. >= 1: the official
# detector marks missing points with -1, and this test is how the drawer skips them.
_MIN_PIXEL = 0.01


def _body_pixel(value: float, size: int) -> float:
    """The body's float64 round trip `(x / W) * W` of the official pipeline."""
    return (float(value) / size) * size


def _hand_face_pixel(value: float, size: int) -> int:
    """`int(float32(x) / float32(W) * W)`: hands and faces are normalised in float32 upstream.

    For integer inputs this sometimes lands just below the integer and truncates to x - 1 (for
    example 255 of 768 integer x at W=768); copying it keeps real detector output bit-exact.
    """
    return int(float(np.float32(value) / np.float32(size)) * size)


def _draw_limbs(canvas: np.ndarray, bodies: Sequence[np.ndarray]) -> None:
    height, width = canvas.shape[:2]
    for limb_index, (a, b) in enumerate(LIMBS):  # limb-major, then person, as the official loop
        for body in bodies:
            if body[a, 2] <= 0 or body[b, 2] <= 0:
                continue
            xa, xb = _body_pixel(body[a, 0], width), _body_pixel(body[b, 0], width)
            ya, yb = _body_pixel(body[a, 1], height), _body_pixel(body[b, 1], height)
            center = (int((xa + xb) / 2), int((ya + yb) / 2))
            length = math.hypot(xa - xb, ya - yb)
            angle = int(math.degrees(math.atan2(ya - yb, xa - xb)))  # a minus b: truncation is order-sensitive
            polygon = cv2.ellipse2Poly(center, (int(length / 2), STICK_HALF_WIDTH), angle, 0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, JOINT_COLORS[limb_index])


def _draw_joints(canvas: np.ndarray, bodies: Sequence[np.ndarray]) -> None:
    height, width = canvas.shape[:2]
    for joint in range(len(JOINT_COLORS)):
        for body in bodies:
            if body[joint, 2] <= 0:
                continue
            # No border check, unlike hands: a joint at x = 0.4 is drawn at x = 0.
            x = int(_body_pixel(body[joint, 0], width))
            y = int(_body_pixel(body[joint, 1], height))
            cv2.circle(canvas, (x, y), JOINT_RADIUS, JOINT_COLORS[joint], thickness=-1)


def _usable_pixels(points: np.ndarray, width: int, height: int) -> list[tuple[int, int] | None]:
    """Truncated pixel of each hand/face point, or None where the drawer would skip it."""
    pixels = []
    for x, y, confidence in points:
        if confidence <= 0:  # the official harness writes -1 here, which the > 0.01 rule skips
            pixels.append(None)
            continue
        px, py = _hand_face_pixel(x, width), _hand_face_pixel(y, height)
        pixels.append((px, py) if px > _MIN_PIXEL and py > _MIN_PIXEL else None)
    return pixels


def _draw_hand(canvas: np.ndarray, hand: np.ndarray) -> None:
    height, width = canvas.shape[:2]
    pixels = _usable_pixels(hand, width, height)
    for edge_index, (a, b) in enumerate(HAND_EDGES):
        if pixels[a] is not None and pixels[b] is not None:
            cv2.line(canvas, pixels[a], pixels[b], HAND_EDGE_COLORS[edge_index], thickness=HAND_LINE_THICKNESS)
    for pixel in pixels:
        if pixel is not None:
            cv2.circle(canvas, pixel, HAND_POINT_RADIUS, HAND_POINT_COLOR, thickness=-1)


def _draw_face(canvas: np.ndarray, face: np.ndarray) -> None:
    height, width = canvas.shape[:2]
    for pixel in _usable_pixels(face, width, height):
        if pixel is not None:
            cv2.circle(canvas, pixel, FACE_POINT_RADIUS, FACE_POINT_COLOR, thickness=-1)


def draw_openpose(
    poses: Pose | Sequence[Pose],
    width: int,
    height: int,
    *,
    body: bool = True,
    hands: bool = True,
    face: bool = True,
) -> np.ndarray:
    """Draw one or several people as the OpenPose condition image, (height, width, 3) uint8 RGB.

    Pixel-identical to the official annotator's `draw_pose` for the same keypoints; people are
    drawn in the official order (all limbs, dim, all joints, all hands, all faces), so overlapping
    people look exactly as they do in MagicDance's training maps.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"canvas size must be positive, got {width}x{height}")
    people = [poses] if isinstance(poses, Pose) else list(poses)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    if body:
        bodies = [person.body for person in people]
        _draw_limbs(canvas, bodies)
        # Dim by truncating multiplication, as `(canvas * 0.6).astype(np.uint8)` upstream.
        canvas = (canvas * LIMB_DIM).astype(np.uint8)
        _draw_joints(canvas, bodies)
    if hands:
        for person in people:
            for hand in (person.left_hand, person.right_hand):
                if (hand[:, 2] > 0).any():
                    _draw_hand(canvas, hand)
    if face:
        for person in people:
            if (person.face[:, 2] > 0).any():
                _draw_face(canvas, person.face)
    return canvas


def render_sequence(
    poses: Iterable[Pose], width: int, height: int, *, body: bool = True, hands: bool = True, face: bool = True
) -> Iterator[np.ndarray]:
    """Condition images for a sequence of single-person poses, one at a time (long videos stay small)."""
    for pose in poses:
        yield draw_openpose(pose, width, height, body=body, hands=hands, face=face)
