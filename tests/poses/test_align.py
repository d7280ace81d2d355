"""Alignment of a driving sequence to the reference body: bone lengths, placement, invariances."""

from __future__ import annotations

import numpy as np
import pytest

from magicpose.poses.align import BONES, align_pose_sequence
from magicpose.poses.types import Pose, PoseSequence

from .conftest import STANDING_BODY, make_face, make_hand, standing_pose

ARM_BONES = {(2, 3), (3, 4), (5, 6), (6, 7)}
LEG_BONES = {(8, 9), (9, 10), (11, 12), (12, 13)}


def build_body(length_factor: dict, arm_angle: float, origin=(0.0, 0.0)) -> np.ndarray:
    """Forward kinematics from the neck: template directions, scaled bone lengths, arms rotated."""
    body = np.zeros((18, 3))
    body[1] = (*(STANDING_BODY[1] + origin), 1.0)
    for parent, child in BONES:
        vector = (STANDING_BODY[child] - STANDING_BODY[parent]) * length_factor.get((parent, child), 1.0)
        if (parent, child) in ARM_BONES:
            cos, sin = np.cos(arm_angle), np.sin(arm_angle)
            vector = np.array([[cos, -sin], [sin, cos]]) @ vector
        body[child] = (*(body[parent, :2] + vector), 1.0)
    return body


def with_parts(body: np.ndarray) -> Pose:
    return Pose(
        body=body,
        left_hand=make_hand(body[7, :2] + 2, 1.2),
        right_hand=make_hand(body[4, :2] - 2, 1.9),
        face=make_face(body[0, :2] + (1, 3), radius=14),
    )


def driving_sequence() -> PoseSequence:
    """A dancer with long arms and short legs, waving and walking right."""
    factors = {**{b: 1.35 for b in ARM_BONES}, **{b: 0.8 for b in LEG_BONES}}
    frames = [
        with_parts(build_body(factors, angle, origin=(4.0 * i, 0.0))) for i, angle in enumerate(np.linspace(0, 1.2, 8))
    ]
    return PoseSequence(frames, 512, 512, fps=25.0, found=[True] * 7 + [False])


def reference_pose() -> Pose:
    """The reference person at another place and size in a 768 x 1024 photo."""
    pose = standing_pose()
    return pose.transformed(1.6, np.array([80.0, 120.0]))


def bone_length(body, bone):
    return float(np.hypot(*(body[bone[1], :2] - body[bone[0], :2])))


def test_aligned_bone_lengths_equal_the_references():
    reference = reference_pose()
    aligned = align_pose_sequence(driving_sequence(), reference, (768, 1024))
    for pose in aligned.frames:
        for bone in BONES:
            assert bone_length(pose.body, bone) == pytest.approx(bone_length(reference.body, bone), rel=0.05)


def test_output_is_in_the_reference_frame_and_starts_at_the_reference_body():
    driving, reference = driving_sequence(), reference_pose()
    aligned = align_pose_sequence(driving, reference, (768, 1024))
    assert aligned.size == (768, 1024) and aligned.fps == 25.0 and aligned.found.tolist() == driving.found.tolist()
    np.testing.assert_allclose(aligned[0].body[1, :2], reference.body[1, :2])
    # the driving walk (4 px a frame at the driving body size) is scaled into the reference frame
    steps = np.diff([pose.body[1, 0] for pose in aligned.frames])
    scale = bone_length(reference.body, (1, 8)) / bone_length(driving[0].body, (1, 8))
    np.testing.assert_allclose(steps, 4.0 * scale, rtol=1e-6)


@pytest.mark.parametrize("scale, shift", [(1.0, (150.0, -60.0)), (2.5, (0.0, 0.0)), (0.4, (33.0, 71.0))])
def test_translating_or_scaling_the_driving_video_changes_nothing(scale, shift):
    driving, reference = driving_sequence(), reference_pose()
    moved = PoseSequence(
        [p.transformed(scale, np.array(shift)) for p in driving.frames],
        int(512 * scale),
        int(512 * scale),
        driving.fps,
        driving.found,
    )
    expected = align_pose_sequence(driving, reference, (768, 1024))
    actual = align_pose_sequence(moved, reference, (768, 1024))
    for a, b in zip(expected.frames, actual.frames):
        for part in Pose.PARTS:
            np.testing.assert_allclose(a.part(part), b.part(part), atol=1e-6)


def test_face_and_hands_follow_their_parent_joints():
    driving, reference = driving_sequence(), reference_pose()
    aligned = align_pose_sequence(driving, reference, (768, 1024))
    for source, pose in zip(driving.frames, aligned.frames):
        # the face keeps its offset from the nose, scaled by the face-size ratio: the reference
        # face (radius 20, photo scaled 1.6) over the driving face (radius 14)
        face_scale = 1.6 * 20 / 14
        np.testing.assert_allclose(
            pose.face[:, :2] - pose.body[0, :2], face_scale * (source.face[:, :2] - source.body[0, :2]), rtol=1e-6
        )
        # the left hand hangs from the left wrist
        offset = pose.left_hand[:, :2] - pose.body[7, :2]
        source_offset = source.left_hand[:, :2] - source.body[7, :2]
        ratio = np.linalg.norm(offset, axis=1)[1:] / np.linalg.norm(source_offset, axis=1)[1:]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-6)  # one rigid scale about the wrist


def test_missing_joints_are_handled():
    driving, reference = driving_sequence(), reference_pose()
    driving[3].body[2] = 0.0  # right shoulder missing: elbow and wrist start a new chain
    driving[4].body[1] = 0.0  # neck missing in a frame
    reference.body[8:14] = 0.0  # half-body photo: no legs
    aligned = align_pose_sequence(driving, reference, (768, 1024))
    for source, pose in zip(driving.frames, aligned.frames):
        assert np.isfinite(pose.body).all()
        assert ((pose.body[:, 2] > 0) == (source.body[:, 2] > 0)).all()
    # the right forearm still gets the reference length; the legs borrow the driving proportion
    assert bone_length(aligned[3].body, (3, 4)) == pytest.approx(bone_length(reference.body, (3, 4)), rel=0.05)
    thigh, torso = bone_length(aligned[0].body, (8, 9)), bone_length(aligned[0].body, (1, 8))
    assert thigh / torso == pytest.approx(
        bone_length(driving[0].body, (8, 9)) / bone_length(driving[0].body, (1, 8)), rel=0.05
    )
    # the frame without a neck is still placed close to its neighbours
    assert np.linalg.norm(aligned[4].body[2, :2] - aligned[5].body[2, :2]) < 30


def test_reference_without_points_is_rejected():
    with pytest.raises(ValueError, match="reference"):
        align_pose_sequence(driving_sequence(), Pose(), (512, 512))


def test_manual_scale_and_offset_move_the_aligned_body_about_the_reference_neck():
    driving, reference = driving_sequence(), reference_pose()
    automatic = align_pose_sequence(driving, reference, (768, 1024))
    manual = align_pose_sequence(driving, reference, (768, 1024), scale=1.25, offset=(30.0, -12.0))
    neck = reference.body[1, :2]
    for auto, pose in zip(automatic.frames, manual.frames):
        for part in Pose.PARTS:
            present = auto.part(part)[:, 2] > 0
            expected = neck + (30.0, -12.0) + 1.25 * (auto.part(part)[present, :2] - neck)
            np.testing.assert_allclose(pose.part(part)[present, :2], expected, atol=1e-6)


def test_align_frame_measures_the_driver_on_that_frame_and_anchors_its_neck():
    driving, reference = driving_sequence(), reference_pose()
    # the dancer's forearms look 20 % longer in frame 5 than in the others (the typical length is not it)
    for elbow, wrist in ((3, 4), (6, 7)):
        driving[5].body[wrist, :2] += 0.2 * (driving[5].body[wrist, :2] - driving[5].body[elbow, :2])
    typical = align_pose_sequence(driving, reference, (768, 1024))
    assert bone_length(typical[5].body, (3, 4)) > 1.1 * bone_length(reference.body, (3, 4))
    aligned = align_pose_sequence(driving, reference, (768, 1024), body_frame=5)
    # frame 5's bones take the reference's lengths exactly (the typical length would be another)
    for bone in BONES:
        assert bone_length(aligned[5].body, bone) == pytest.approx(bone_length(reference.body, bone), rel=1e-6)
    # and frame 5's neck is where the reference's neck is; frame 0 is where the dancer was then
    np.testing.assert_allclose(aligned[5].body[1, :2], reference.body[1, :2], atol=1e-6)
    scale = bone_length(reference.body, (1, 8)) / bone_length(driving[5].body, (1, 8))
    np.testing.assert_allclose(aligned[0].body[1, 0] - aligned[5].body[1, 0], -20.0 * scale, rtol=1e-6)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"scale": 0.0}, "--align-scale must be a positive number"),
        ({"scale": float("inf")}, "--align-scale must be a positive number"),
        ({"offset": (1.0, float("nan"))}, "--align-offset takes two finite numbers"),
        ({"body_frame": 8}, "--align-frame must be a driving frame from 0 to 7"),
        ({"body_frame": -1}, "--align-frame must be a driving frame from 0 to 7"),
    ],
)
def test_bad_manual_alignment_values_name_their_option(options, message):
    from magicpose.errors import InputError

    with pytest.raises(InputError, match=message):
        align_pose_sequence(driving_sequence(), reference_pose(), (768, 1024), **options)


def test_pose_align_command_takes_the_manual_corrections(tmp_path, capsys):
    from magicpose.interfaces.cli import main
    from magicpose.poses.openpose_json import load_poses, save_poses

    driving, reference = driving_sequence(), reference_pose()
    save_poses(driving, tmp_path / "dance.json")
    save_poses(PoseSequence([reference], 768, 1024, fps=1.0), tmp_path / "me.json")
    command = ["pose", "align", str(tmp_path / "dance.json"), "--reference", str(tmp_path / "me.json")]
    manual = ["--align-scale", "1.5", "--align-offset", "10", "-5", "--align-frame", "2"]
    assert main([*command, "-o", str(tmp_path / "aligned.json"), *manual]) == 0
    expected = align_pose_sequence(
        load_poses(tmp_path / "dance.json"), reference, (768, 1024), scale=1.5, offset=(10, -5), body_frame=2
    )
    for a, b in zip(load_poses(tmp_path / "aligned.json").frames, expected.frames):
        np.testing.assert_allclose(a.body, b.body, atol=1e-2)
    assert main([*command, "-o", str(tmp_path / "bad.json"), "--align-frame", "99"]) == 2
    assert "--align-frame must be a driving frame from 0 to 7" in capsys.readouterr().err
    assert not (tmp_path / "bad.json").exists()
