"""The 70 face landmarks (68 iBUG points + 2 pupils) of a puppet, from a head placement and an expression.

Face frame: origin at the face centre, x to the image right, y down, unit = half the face width.
The eye midpoint sits at (0, -0.3) and the chin (point 8) at (0, 0.95), so the eye-to-chin distance
is 1.25 units whatever the yaw; the renderer uses that to find the head's size back from the pose.
Point numbering follows iBUG-300W as OpenPose uses it: 0-16 jaw from the image-left ear to the
image-right ear, 17-26 brows, 27-35 nose, 36-47 eyes (36 and 45 outer corners), 48-67 mouth, 68/69 pupils.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EYE_MID_Y = -0.3
EYE_TO_CHIN = 1.25
HEAD_TOP_Y = -1.35
LEFT_EYE = slice(36, 42)  # image-left eye (the subject's right)
RIGHT_EYE = slice(42, 48)
MOUTH_OUTER = slice(48, 60)
MOUTH_INNER = slice(60, 68)
LEFT_BROW = slice(17, 22)
RIGHT_BROW = slice(22, 27)


@dataclass(frozen=True)
class Expression:
    """mouth_open, smile, blink in [0, 1] (smile may go slightly negative: a frown); brow raise; gaze in eye widths."""

    mouth_open: float = 0.0
    smile: float = 0.0
    blink: float = 0.0
    brow_raise: float = 0.0
    gaze_x: float = 0.0
    gaze_y: float = 0.0


def _eye(centre_x: float, openness: float, gaze: tuple[float, float]):
    """Six eyelid points in iBUG order (image-left corner, two upper, image-right corner, two lower) and the pupil."""
    half_width, upper, lower = 0.17, 0.1 * openness, 0.075 * openness
    y = EYE_MID_Y
    left, right = centre_x - half_width, centre_x + half_width
    points = [
        (left, y),
        (centre_x - 0.06, y - upper),
        (centre_x + 0.06, y - upper),
        (right, y),
        (centre_x + 0.06, y + lower),
        (centre_x - 0.06, y + lower),
    ]
    pupil = (centre_x + gaze[0] * 0.08, y + gaze[1] * 0.04 * openness)
    return points, pupil


def landmark_template(expression: Expression) -> tuple[np.ndarray, np.ndarray]:
    """(70, 2) face-frame points for an expression, and (70,) depths used to turn the head (yaw/pitch)."""
    points = np.zeros((70, 2))
    depth = np.zeros(70)
    # Jaw: a half ellipse from ear level round the chin, narrowing towards the chin.
    angles = np.pi - np.pi * np.arange(17) / 16
    points[0:17, 0] = np.cos(angles) * (1.0 - 0.18 * np.sin(angles) ** 2)
    points[0:17, 1] = -0.15 + 1.1 * np.sin(angles)
    depth[0:17] = 0.45 * np.sin(angles)
    # Brows arch over the eyes and rise with brow_raise.
    brow_x = np.linspace(-0.78, -0.18, 5)
    brow_y = -0.5 - 0.07 * np.sin(np.linspace(0.3, np.pi - 0.3, 5)) - 0.1 * expression.brow_raise
    points[17:22] = np.stack([brow_x, brow_y], 1)
    points[22:27] = np.stack([-brow_x[::-1], brow_y[::-1]], 1)
    depth[17:27] = 0.45
    points[27:31] = np.stack([np.zeros(4), np.linspace(-0.32, 0.12, 4)], 1)
    depth[27:31] = np.linspace(0.5, 0.75, 4)
    points[31:36] = np.stack([np.linspace(-0.2, 0.2, 5), [0.2, 0.23, 0.25, 0.23, 0.2]], 1)
    depth[31:36] = 0.55
    openness = 1.0 - float(np.clip(expression.blink, 0, 1))
    gaze = (expression.gaze_x, expression.gaze_y)
    for start, pupil_index, centre_x in ((36, 68, -0.4), (42, 69, 0.4)):
        eye_points, pupil = _eye(centre_x, openness, gaze)
        points[start : start + 6] = eye_points
        points[pupil_index] = pupil
    depth[36:48] = 0.4
    depth[68:70] = 0.42
    # Mouth: a smile widens it and lifts the corners; opening drops the lower lip.
    smile, opening = float(expression.smile), float(np.clip(expression.mouth_open, 0, 1))
    half = 0.34 + 0.08 * smile
    centre_y = 0.55
    corner_y = centre_y - 0.09 * smile
    curve = lambda x: corner_y + (centre_y - corner_y) * (1 - (x / half) ** 2)  # noqa: E731
    upper_x = np.array([-0.6, -0.3, 0.0, 0.3, 0.6]) * half
    lower_x = upper_x[::-1]
    drop = 0.32 * opening
    points[48] = (-half, corner_y)
    points[49:54] = np.stack([upper_x, curve(upper_x) - np.array([0.06, 0.08, 0.06, 0.08, 0.06])], 1)
    points[54] = (half, corner_y)
    points[55:60] = np.stack([lower_x, curve(lower_x) + 0.08 + drop * (1 - (lower_x / half) ** 2)], 1)
    inner_x = np.array([-0.3, 0.0, 0.3]) * half
    points[60] = (-0.85 * half, corner_y)
    points[61:64] = np.stack([inner_x, curve(inner_x) - 0.01 - 0.03 * opening], 1)
    points[64] = (0.85 * half, corner_y)
    points[65:68] = np.stack(
        [inner_x[::-1], curve(inner_x[::-1]) + 0.01 + drop * 0.85 * (1 - (inner_x / half) ** 2)], 1
    )
    depth[48:68] = 0.5
    return points, depth


def face_landmarks(
    centre: np.ndarray, scale: float, roll: float, yaw: float, pitch: float, expression: Expression
) -> np.ndarray:
    """(70, 3) pixel landmarks with confidence 1: template turned (yaw, pitch), rotated (roll), scaled, placed.

    The turn is a weak-perspective one: x' = x cos(yaw) + depth sin(yaw), y' = y cos(pitch) + depth sin(pitch).
    """
    points, depth = landmark_template(expression)
    turned = np.stack(
        [points[:, 0] * np.cos(yaw) + depth * np.sin(yaw), points[:, 1] * np.cos(pitch) + depth * np.sin(pitch)], 1
    )
    cos, sin = np.cos(roll), np.sin(roll)
    rotated = turned @ np.array([[cos, sin], [-sin, cos]])
    out = np.ones((70, 3))
    out[:, :2] = np.asarray(centre) + scale * rotated
    return out


@dataclass(frozen=True)
class HeadFrame:
    """Where the head is, read back from a pose: centre and unit (pixels), roll and yaw (radians)."""

    centre: np.ndarray
    scale: float
    roll: float
    yaw: float

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        """Face-frame points (N, 2) -> pixels, with the head's roll (yaw is applied by the caller as a shift)."""
        cos, sin = np.cos(self.roll), np.sin(self.roll)
        return self.centre + self.scale * (np.asarray(points) @ np.array([[cos, sin], [-sin, cos]]))


def head_frame_from_face(face: np.ndarray) -> HeadFrame:
    """Invert the template placement from the landmarks: eyes give roll, eye-to-chin distance gives scale."""
    # Eye corners (36, 39 and 42, 45) lie on the template's eye line whatever the blink.
    left, right = face[[36, 39], :2].mean(0), face[[42, 45], :2].mean(0)
    eye_mid = (left + right) / 2
    roll = float(np.arctan2(right[1] - left[1], right[0] - left[0]))
    scale = float(np.linalg.norm(face[8, :2] - eye_mid) / EYE_TO_CHIN)
    cos, sin = np.cos(roll), np.sin(roll)
    down = np.array([-sin, cos])
    centre = eye_mid - EYE_MID_Y * scale * down
    # The nose tip moves sideways by depth * sin(yaw) (depth 0.75) relative to the un-turned midline.
    across = np.array([cos, sin])
    offset = float((face[30, :2] - eye_mid) @ across) / max(scale, 1e-6)
    yaw = float(np.arcsin(np.clip(offset / 0.35, -1, 1)))  # nose tip depth 0.75 minus eye depth 0.4
    return HeadFrame(centre=centre, scale=scale, roll=roll, yaw=yaw)


def head_frame_from_body(body: np.ndarray) -> HeadFrame | None:
    """Fallback for poses without a face (real poses, masked faces): nose, eyes or ears, and the neck."""
    present = body[:, 2] > 0
    if not present[0] and not (present[14] and present[15]):
        return None
    if present[14] and present[15]:
        left, right = body[14, :2], body[15, :2]  # right_eye is image-left for a person facing the camera
        scale = float(np.linalg.norm(right - left) / 0.8)
        roll = float(np.arctan2(right[1] - left[1], right[0] - left[0]))
        centre = (left + right) / 2 + np.array([-np.sin(roll), np.cos(roll)]) * 0.3 * scale
        return HeadFrame(centre=centre, scale=scale, roll=roll, yaw=0.0)
    if present[16] and present[17]:
        scale = float(np.linalg.norm(body[17, :2] - body[16, :2]) / 2.1)
    elif present[1]:
        scale = float(np.linalg.norm(body[0, :2] - body[1, :2]) / 2.6)
    else:
        return None
    return HeadFrame(centre=body[0, :2].copy(), scale=scale, roll=0.0, yaw=0.0)
