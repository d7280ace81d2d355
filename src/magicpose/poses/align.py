"""Retarget a driving pose sequence onto the reference person's body (bone lengths and placement).

Driving videos rarely show a body of the reference's proportions, size or position; fed
unaligned, the generator paints the reference person with the dancer's limbs. Like MimicMotion and
UniAnimate, we keep the driving motion (bone directions, foreshortening, body displacement) and
take the body from the reference:

* The skeleton is the tree of the 17 drawn OpenPose limbs, rooted at the neck. Each bone keeps its
  driving direction and is scaled by `reference length / driving length`, where the driving length
  is the bone's typical (90th-percentile) length over the sequence, so foreshortening survives.
* The neck follows the driving neck's displacement since the first frame, scaled by the ratio of
  body sizes and started at the reference's neck: the body stands where the reference stands.
* The face follows the nose and each hand its wrist, scaled by the face / hand size ratio.

All ratios and displacements are invariant to translating or uniformly scaling the driving video,
so the result is too. Joints whose parent is missing in a frame are placed by the global similarity
(anchor + body scale) instead; bones the reference lacks (e.g. legs of a half-body photo) borrow
the mirrored bone, or else the driving bone at the body scale.

When that is wrong, three manual corrections (`--align-scale`, `--align-offset`, `--align-frame`):
a scale on every ratio, an offset in output pixels, and a driving frame whose body (bones, face and
hands, neck) stands for the driver's instead of the typical lengths and the neck's first sighting.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from magicpose.errors import InputError
from magicpose.poses.types import Pose, PoseSequence

NOSE, NECK, RIGHT_WRIST, LEFT_WRIST, RIGHT_ELBOW, LEFT_ELBOW = 0, 1, 4, 7, 3, 6

# (parent, child) in breadth-first order from the neck: the 17 limbs OpenPose draws.
BONES = (
    (1, 2),
    (1, 5),
    (1, 8),
    (1, 11),
    (1, 0),
    (2, 3),
    (5, 6),
    (8, 9),
    (11, 12),
    (0, 14),
    (0, 15),
    (3, 4),
    (6, 7),
    (9, 10),
    (12, 13),
    (14, 16),
    (15, 17),
)

# COCO-18 left/right counterparts, for borrowing a bone the reference does not show.
MIRROR_JOINT = {
    2: 5,
    3: 6,
    4: 7,
    5: 2,
    6: 3,
    7: 4,
    8: 11,
    9: 12,
    10: 13,
    11: 8,
    12: 9,
    13: 10,
    14: 15,
    15: 14,
    16: 17,
    17: 16,
}
# Bones that measure overall body size (shoulders and torso), used for the global scale.
TORSO_BONES = ((1, 2), (1, 5), (1, 8), (1, 11))
TYPICAL_PERCENTILE = 90
HAND_PALM = (0, 9)  # wrist -> middle-finger MCP: the palm length


def _present(points: np.ndarray, *indices: int) -> bool:
    return all(points[i, 2] > 0 for i in indices)


def _bone_length(body: np.ndarray, bone: tuple[int, int]) -> float | None:
    a, b = bone
    return float(np.hypot(*(body[b, :2] - body[a, :2]))) if _present(body, a, b) else None


def typical_lengths(values: list[float | None]) -> float | None:
    """The bone's typical length: a high percentile of its per-frame lengths (foreshortening only
    shortens a bone, while a plain maximum would follow the worst detection error)."""
    values = [v for v in values if v is not None and v > 0]
    return float(np.percentile(values, TYPICAL_PERCENTILE)) if values else None


def _spread(points: np.ndarray) -> float | None:
    """RMS distance of present points from their mean: a rotation-invariant size of a face."""
    xy = points[points[:, 2] > 0, :2]
    if len(xy) < 3:
        return None
    return float(np.sqrt(((xy - xy.mean(axis=0)) ** 2).sum(axis=1).mean()))


def _hand_size(hand: np.ndarray) -> float | None:
    return _bone_length(hand, HAND_PALM)


def _ratio(reference: float | None, driving: float | None) -> float | None:
    return reference / driving if reference and driving else None


def _reference_bone_length(body: np.ndarray, bone: tuple[int, int]) -> float | None:
    length = _bone_length(body, bone)
    if length is None:
        mirrored = tuple(MIRROR_JOINT.get(j, j) for j in bone)
        length = _bone_length(body, mirrored)
    return length


def _first_present(sequence: PoseSequence, joint: int) -> np.ndarray | None:
    for pose in sequence.frames:
        if pose.body[joint, 2] > 0:
            return pose.body[joint, :2].copy()
    return None


def _measure(chosen: list[Pose], frames: list[Pose], length) -> float | None:
    """A size of the driver: in the chosen frame when it shows it, else typical over the sequence."""
    values = [length(pose) for pose in chosen]
    if values and values[0]:
        return float(values[0])
    return typical_lengths([length(pose) for pose in frames])


class _Retarget:
    """Per-sequence ratios, computed once; `__call__` maps one frame.

    `body_frame`: the driving frame whose body (bone lengths, face and hand sizes, neck position)
    stands for the driver, instead of the typical lengths over the sequence and the neck's first
    sighting; what that frame does not show still comes from the sequence. `scale` multiplies every
    ratio (the retargeted body grows about the reference neck); `offset` moves it, in output pixels.
    """

    def __init__(
        self,
        driving: PoseSequence,
        reference: Pose,
        body_frame: int | None = None,
        scale: float = 1.0,
        offset: tuple[float, float] = (0.0, 0.0),
    ):
        frames = driving.frames
        chosen = [frames[body_frame]] if body_frame is not None else []
        reference_lengths = {bone: _reference_bone_length(reference.body, bone) for bone in BONES}
        driving_lengths = {
            bone: _measure(chosen, frames, lambda p, bone=bone: _bone_length(p.body, bone)) for bone in BONES
        }

        common = [b for b in TORSO_BONES if reference_lengths[b] and driving_lengths[b]]
        if not common:  # no torso in one of them: fall back to any bone both show
            common = [b for b in BONES if reference_lengths[b] and driving_lengths[b]]
        if common:
            self.body_scale = sum(reference_lengths[b] for b in common) / sum(driving_lengths[b] for b in common)
        else:
            self.body_scale = _ratio(_spread_all(reference), _measure(chosen, frames, _spread_all)) or 1.0

        self.bone_scale = {
            bone: _ratio(reference_lengths[bone], driving_lengths[bone]) or self.body_scale for bone in BONES
        }

        self.face_scale = _ratio(_spread(reference.face), _measure(chosen, frames, lambda p: _spread(p.face)))
        if self.face_scale is None:
            head = [
                self.bone_scale[b]
                for b in ((0, 14), (0, 15), (14, 16), (15, 17))
                if reference_lengths[b] and driving_lengths[b]
            ]
            self.face_scale = float(np.mean(head)) if head else self.body_scale

        self.hand_scale = {}
        for name, forearm in (("left_hand", (6, 7)), ("right_hand", (3, 4))):
            size = _measure(chosen, frames, lambda p, name=name: _hand_size(p.part(name)))
            self.hand_scale[name] = _ratio(_hand_size(reference.part(name)), size) or self.bone_scale[forearm]

        # The manual correction: every ratio times `scale` grows the body about the anchor.
        self.body_scale *= scale
        self.face_scale *= scale
        self.bone_scale = {bone: value * scale for bone, value in self.bone_scale.items()}
        self.hand_scale = {name: value * scale for name, value in self.hand_scale.items()}

        # Anchor: the driving neck at its first sighting (or in the body frame) goes to the reference neck.
        driving_neck = chosen[0].body[NECK, :2].copy() if chosen and chosen[0].body[NECK, 2] > 0 else None
        if driving_neck is None:
            driving_neck = _first_present(driving, NECK)
        if reference.body[NECK, 2] > 0 and driving_neck is not None:
            self.driving_anchor = driving_neck
            self.reference_anchor = reference.body[NECK, :2].copy()
        else:  # no neck on one side: match the centres of all points instead
            self.driving_anchor = _centre_all(chosen + frames)
            self.reference_anchor = (
                reference.present_points().mean(axis=0) if len(reference.present_points()) else self.driving_anchor
            )
        self.reference_anchor = self.reference_anchor + np.asarray(offset, dtype=np.float64)

    def place(self, xy: np.ndarray) -> np.ndarray:
        """The global similarity: driving pixels -> reference pixels at the body scale."""
        return self.reference_anchor + self.body_scale * (xy - self.driving_anchor)

    def __call__(self, pose: Pose) -> Pose:
        body = pose.body
        out_body = np.zeros_like(body)
        if body[NECK, 2] > 0:
            out_body[NECK] = (*self.place(body[NECK, :2]), body[NECK, 2])
        for parent, child in BONES:
            if body[child, 2] <= 0:
                continue
            if out_body[parent, 2] > 0 and body[parent, 2] > 0:
                offset = self.bone_scale[(parent, child)] * (body[child, :2] - body[parent, :2])
                out_body[child, :2] = out_body[parent, :2] + offset
            else:  # parent missing: this joint starts a new chain at its globally placed position
                out_body[child, :2] = self.place(body[child, :2])
            out_body[child, 2] = body[child, 2]

        parts = {"body": out_body}
        parts["face"] = self._follow(pose.face, body, out_body, NOSE, self.face_scale)
        parts["right_hand"] = self._follow(pose.right_hand, body, out_body, RIGHT_WRIST, self.hand_scale["right_hand"])
        parts["left_hand"] = self._follow(pose.left_hand, body, out_body, LEFT_WRIST, self.hand_scale["left_hand"])
        return Pose(**parts)

    def _follow(
        self, points: np.ndarray, body: np.ndarray, out_body: np.ndarray, parent: int, scale: float
    ) -> np.ndarray:
        """Move a face or hand rigidly with its parent joint and rescale it about that joint."""
        out = np.zeros_like(points)
        present = points[:, 2] > 0
        if not present.any():
            return out
        if body[parent, 2] > 0 and out_body[parent, 2] > 0:
            origin, target = body[parent, :2], out_body[parent, :2]
        else:  # no parent joint in this frame: keep the part where the global placement puts it
            origin = points[present, :2].mean(axis=0)
            target = self.place(origin)
        out[present, :2] = target + scale * (points[present, :2] - origin)
        out[present, 2] = points[present, 2]
        return out


def _spread_all(pose: Pose) -> float | None:
    points = pose.present_points()
    return _spread(np.hstack([points, np.ones((len(points), 1))])) if len(points) else None


def _centre_all(frames: list[Pose]) -> np.ndarray:
    for pose in frames:
        points = pose.present_points()
        if len(points):
            return points.mean(axis=0)
    return np.zeros(2)


def align_pose_sequence(
    driving: PoseSequence,
    reference: Pose,
    reference_size: tuple[int, int],
    *,
    scale: float = 1.0,
    offset: tuple[float, float] = (0.0, 0.0),
    body_frame: int | None = None,
) -> PoseSequence:
    """The driving motion on the reference body, in the reference image's frame.

    Args:
        driving: poses of the driving video (any size, position and body proportions).
        reference: the pose of the reference person, in the reference image's pixels.
        reference_size: (width, height) of the reference image; the output's frame size.
        scale, offset, body_frame: manual corrections for when the automatic retargeting is wrong
            (`--align-scale`, `--align-offset`, `--align-frame`): the retargeted body times `scale`
            about the reference neck, moved by `offset` pixels, with the driver's body measured on
            driving frame `body_frame` (0-based) instead of over the whole sequence.
    """
    if len(driving) == 0:
        raise ValueError("the driving sequence has no frames")
    if not len(reference.present_points()):
        raise ValueError("the reference pose has no points; detect a person in the reference image first")
    check_manual_alignment(len(driving), scale, offset, body_frame)
    retarget = _Retarget(driving, reference, body_frame, float(scale), tuple(float(v) for v in offset))
    width, height = reference_size
    frames = [retarget(pose) for pose in driving.frames]
    return dataclasses.replace(
        driving, frames=frames, width=int(width), height=int(height), found=driving.found.copy()
    )


def check_manual_alignment(
    frames: int, scale: float = 1.0, offset: tuple[float, float] = (0.0, 0.0), body_frame: int | None = None
) -> None:
    """InputError naming the option when a manual alignment value cannot be used."""
    if not (np.isfinite(scale) and scale > 0):
        raise InputError(f"--align-scale must be a positive number (1 = the automatic size), got {scale}")
    if len(offset) != 2 or not np.isfinite(np.asarray(offset, dtype=float)).all():
        raise InputError(f"--align-offset takes two finite numbers DX DY (output pixels), got {offset}")
    if body_frame is not None and not 0 <= body_frame < frames:
        raise InputError(
            f"--align-frame must be a driving frame from 0 to {frames - 1} (the frames animated), got {body_frame}"
        )
