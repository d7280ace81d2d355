"""Forward kinematics: joint angles of a puppet -> a full `Pose` (body, face, hands) in world centimetres.

Angles are radians. A limb angle of 0 hangs straight down; positive angles swing the limb away
from the body's midline (so the same numbers give a mirror-symmetric pose on both sides); arm
angles near pi point straight up. Bends are added to the parent limb's angle. Because every bone
is placed from its parent with the identity's fixed length, bone lengths never change.
"""

from __future__ import annotations

import numpy as np

from magicpose.data.puppet.face import Expression, face_landmarks
from magicpose.data.puppet.hands import hand_landmarks
from magicpose.data.puppet.identity import Proportions
from magicpose.poses.types import BODY_NAMES, Pose

#: Degrees of freedom of a puppet, in the order motions store them.
JOINTS = (
    "lean",
    "head_tilt",
    "head_yaw",
    "head_pitch",
    "right_arm",
    "right_elbow",
    "left_arm",
    "left_elbow",
    "right_wrist",
    "left_wrist",
    "right_curl",
    "left_curl",
    "spread",
    "right_leg",
    "right_knee",
    "left_leg",
    "left_knee",
    "sway",
    "mouth_open",
    "smile",
    "blink",
    "brow_raise",
    "gaze_x",
    "gaze_y",
)
JOINT_INDEX = {name: index for index, name in enumerate(JOINTS)}


def _limb_direction(angle: float, side: float, lean: float) -> np.ndarray:
    """Unit vector of a limb at `angle` from hanging, swung outward on `side` (-1 image-left, +1 image-right)."""
    local = np.array([side * np.sin(angle), np.cos(angle)])
    cos, sin = np.cos(lean), np.sin(lean)
    return np.array([cos * local[0] - sin * local[1], sin * local[0] + cos * local[1]])


def articulate(proportions: Proportions, angles: np.ndarray) -> Pose:
    """The pose for one vector of `JOINTS` values: the lower ankle on the floor (y = 0), the pelvis at x = sway."""
    a = dict(zip(JOINTS, np.asarray(angles, dtype=np.float64)))
    p = proportions
    lean = a["lean"]
    up = -_limb_direction(0.0, 1.0, lean)
    across = np.array([np.cos(lean), np.sin(lean)])  # towards the image right
    pelvis = np.zeros(2)
    neck = pelvis + p.torso * up
    body = np.zeros((18, 3))
    body[:, 2] = 1.0
    points = {
        "neck": neck,
        "right_shoulder": neck - p.shoulder * across,
        "left_shoulder": neck + p.shoulder * across,
        "right_hip": pelvis - p.hip * across,
        "left_hip": pelvis + p.hip * across,
    }
    hands = {}
    for side_name, side in (("right", -1.0), ("left", 1.0)):
        upper = _limb_direction(a[f"{side_name}_arm"], side, lean)
        fore = _limb_direction(a[f"{side_name}_arm"] + a[f"{side_name}_elbow"], side, lean)
        elbow = points[f"{side_name}_shoulder"] + p.upper_arm * upper
        wrist = elbow + p.forearm * fore
        points[f"{side_name}_elbow"], points[f"{side_name}_wrist"] = elbow, wrist
        hand_angle = float(np.arctan2(fore[1], fore[0])) + side * a[f"{side_name}_wrist"]
        # Palm towards the camera: the thumb is on the outer side of a hanging hand (and turns with the arm).
        hands[side_name] = hand_landmarks(wrist, hand_angle, p.hand, -side, a[f"{side_name}_curl"], a["spread"])
        thigh = _limb_direction(a[f"{side_name}_leg"], side, 0.0)
        shin = _limb_direction(a[f"{side_name}_leg"] - a[f"{side_name}_knee"], side, 0.0)
        knee = points[f"{side_name}_hip"] + p.thigh * thigh
        points[f"{side_name}_knee"], points[f"{side_name}_ankle"] = knee, knee + p.shin * shin
    head_roll = lean + a["head_tilt"]
    head_centre = neck + p.neck * -_limb_direction(0.0, 1.0, head_roll)
    expression = Expression(a["mouth_open"], a["smile"], a["blink"], a["brow_raise"], a["gaze_x"], a["gaze_y"])
    face = face_landmarks(head_centre, p.head, head_roll, a["head_yaw"], a["head_pitch"], expression)
    for index, name in enumerate(BODY_NAMES):
        if name in points:
            body[index, :2] = points[name]
    body[0, :2] = face[30, :2]
    body[14, :2] = face[36:42, :2].mean(0)  # right_eye: the subject's right is the image left
    body[15, :2] = face[42:48, :2].mean(0)
    centre = face[27:31, :2].mean(0)
    body[16, :2] = face[1, :2] + 0.15 * (face[1, :2] - centre)
    body[17, :2] = face[15, :2] + 0.15 * (face[15, :2] - centre)
    pose = Pose(body=body, left_hand=hands["left"], right_hand=hands["right"], face=face)
    floor = max(points["right_ankle"][1], points["left_ankle"][1])
    return pose.transformed(1.0, np.array([a["sway"], -floor]))
