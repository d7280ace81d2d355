"""The puppet world: determinism, splits, fixed bones, pose-driven drawing, expressions, motion."""

from __future__ import annotations

import numpy as np
import pytest

from magicpose.data.puppet.face import Expression, face_landmarks, head_frame_from_face
from magicpose.data.puppet.identity import sample_identity
from magicpose.data.puppet.motion import STATIC_RANGES, random_static_angles, sample_dance
from magicpose.data.puppet.parts import Part
from magicpose.data.puppet.render import render_puppet
from magicpose.data.puppet.skeleton import JOINT_INDEX, JOINTS, articulate
from magicpose.data.puppet.world import SPLITS, PuppetVideo, VideoSpec, split_of, video_spec
from magicpose.poses.render import draw_openpose

BONES = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (11, 12), (12, 13), (2, 8), (5, 11)]


def _bone_lengths(pose):
    return np.array([np.linalg.norm(pose.body[a, :2] - pose.body[b, :2]) for a, b in BONES])


def test_same_spec_gives_identical_frames_and_different_seeds_differ():
    spec = video_spec("train", 5, num_frames=4)
    first, second = PuppetVideo(spec).frame(3), PuppetVideo(spec).frame(3)
    assert np.array_equal(first.image, second.image)
    assert np.array_equal(first.parts, second.parts)
    assert np.array_equal(first.pose.body, second.pose.body)
    other = PuppetVideo(video_spec("train", 6, num_frames=4)).frame(3)
    assert np.abs(first.image.astype(int) - other.image.astype(int)).mean() > 10


def test_identities_are_deterministic_and_varied():
    assert sample_identity(42) == sample_identity(42)
    identities = [sample_identity(seed) for seed in range(40)]
    assert len({i.skin for i in identities}) > 20
    assert {i.hair_style for i in identities} >= {"short", "long", "bald"}
    assert {i.top.pattern for i in identities} == {"solid", "stripes", "checks", "dots"}
    assert {i.sleeves for i in identities} == {"none", "short", "elbow", "long"}
    assert len({round(i.proportions.upper_arm, 3) for i in identities}) == 40


def test_splits_are_disjoint_and_test_videos_use_test_seeds():
    ranges = list(SPLITS.values())
    for a in range(len(ranges)):
        for b in range(a + 1, len(ranges)):
            assert not set(range(ranges[a].start, ranges[a].stop, 997)) & set(ranges[b])
    spec = video_spec("test", 3)
    assert split_of(spec.identity_seed) == split_of(spec.motion_seed) == "test"
    assert spec.identity_seed not in SPLITS["train"]
    with pytest.raises(ValueError):
        VideoSpec(identity_seed=SPLITS["test"].start, motion_seed=0)  # a test identity with a train motion


def test_bone_lengths_are_fixed_within_a_video():
    video = PuppetVideo(video_spec("val", 0, framing="full", num_frames=40))
    lengths = np.stack([_bone_lengths(video.render_pose(i)) for i in range(0, 40, 3)])
    assert np.allclose(lengths, lengths[0], atol=1e-6)
    assert lengths[0].min() > 3  # real limbs, not collapsed points


def test_condition_is_draw_openpose_of_the_frame_pose_and_points_outside_are_missing():
    video = PuppetVideo(video_spec("test", 1, framing="upper", num_frames=3))
    frame = video.frame(2)
    assert np.array_equal(frame.condition(), draw_openpose(frame.pose, 128, 128))
    full = video.render_pose(2)
    inside = (full.body[:, :2] >= 0).all(1) & (full.body[:, :2] <= 127).all(1)
    assert not inside.all()  # upper-body framing cuts the legs
    assert np.array_equal(frame.pose.body[:, 2] > 0, inside)


def test_mask_matches_parts_and_background_is_untouched_outside_the_person():
    video = PuppetVideo(video_spec("train", 2, num_frames=2))
    frame = video.frame(1)
    parts_mask = frame.parts > 0
    iou = (frame.mask & parts_mask).sum() / (frame.mask | parts_mask).sum()
    assert iou > 0.85
    assert frame.mask.mean() > 0.03
    # Far from the person, the frame is exactly the known background.
    from scipy.ndimage import binary_dilation

    away = ~binary_dilation(frame.mask, iterations=2)
    assert np.array_equal(frame.image[away], np.asarray(video.background)[away])


def _render_with(expression: Expression, identity_seed: int = 3):
    identity = sample_identity(identity_seed)
    angles = np.zeros(len(JOINTS))
    angles[JOINT_INDEX["right_arm"]] = angles[JOINT_INDEX["left_arm"]] = 0.4
    pose = articulate(identity.proportions, angles)
    face = face_landmarks(pose.face[27:31, :2].mean(0), identity.proportions.head, 0.0, 0.0, 0.0, expression)
    pose = pose.copy()
    pose.face[:] = face
    # 3 px per cm, the face centre at (192, 80) of a 384 px frame: the whole upper body and both hands in view.
    pixels = pose.transformed(3.0, np.array([192.0, 80.0]) - 3.0 * face[27:31, :2].mean(0))
    return render_puppet(identity, pixels, np.full((384, 384, 3), 128, np.uint8)), pixels


def test_face_follows_the_landmarks_mouth_and_blink():
    closed, _ = _render_with(Expression(mouth_open=0.0))
    opened, _ = _render_with(Expression(mouth_open=1.0))
    assert (opened.parts == Part.MOUTH).sum() > 3 * max(1, (closed.parts == Part.MOUTH).sum())  # a line vs an opening
    awake, _ = _render_with(Expression(blink=0.0))
    asleep, _ = _render_with(Expression(blink=1.0))
    assert np.isin(awake.parts, [Part.EYE_WHITE, Part.IRIS]).sum() > 20
    assert (asleep.parts == Part.EYE_WHITE).sum() == 0 and (asleep.parts == Part.IRIS).sum() == 0


def test_smile_lifts_the_mouth_corners():
    neutral = face_landmarks(np.zeros(2), 10.0, 0.0, 0.0, 0.0, Expression(smile=0.0))
    smiling = face_landmarks(np.zeros(2), 10.0, 0.0, 0.0, 0.0, Expression(smile=1.0))
    assert smiling[48, 1] < neutral[48, 1] and smiling[54, 1] < neutral[54, 1]  # y grows downwards
    assert smiling[54, 0] - smiling[48, 0] > neutral[54, 0] - neutral[48, 0]


def test_head_frame_is_recovered_from_landmarks():
    face = face_landmarks(np.array([50.0, 40.0]), 12.0, 0.2, 0.0, 0.0, Expression())
    head = head_frame_from_face(face)
    assert np.allclose(head.centre, [50.0, 40.0], atol=1e-6)
    assert head.scale == pytest.approx(12.0)
    assert head.roll == pytest.approx(0.2)


def test_hands_are_drawn_where_the_hand_points_are():
    rendered, pose = _render_with(Expression())
    for hand in (pose.left_hand, pose.right_hand):
        x, y = np.round(hand[9, :2]).astype(int)  # the middle knuckle lies on the palm
        assert rendered.parts[y, x] == Part.SKIN
    moved = pose.copy()
    moved.right_hand[:, :2] += (25.0, 0.0)
    shifted = render_puppet(sample_identity(3), moved, np.full((384, 384, 3), 128, np.uint8))
    x, y = np.round(moved.right_hand[12, :2]).astype(int)  # the moved middle fingertip
    assert shifted.parts[y, x] == Part.SKIN and rendered.parts[y, x] != Part.SKIN


def test_dance_is_smooth_and_periodic_and_expressions_change():
    dance = sample_dance(7)
    fps = 240.0
    angles = dance.angles(int(dance.period * fps) + 1, fps)
    body = [JOINT_INDEX[name] for name in ("right_arm", "left_arm", "right_elbow", "left_knee", "lean")]
    step = np.abs(np.diff(angles[:, body], axis=0)).max()
    assert step < 0.06  # under 15 rad/s anywhere, move changes included: no jumps
    assert np.ptp(angles[:, JOINT_INDEX["right_arm"]]) > 0.2  # it does move
    # The body's dance repeats; expressions run on their own clocks.
    body_joints = [JOINT_INDEX[name] for name in JOINTS[:18]]
    assert np.allclose(dance.angles_at(1.3)[body_joints], dance.angles_at(1.3 + dance.period)[body_joints])
    assert angles[:, JOINT_INDEX["blink"]].max() > 0.5 and angles[:, JOINT_INDEX["mouth_open"]].max() > 0.2
    assert np.ptp(angles[:, JOINT_INDEX["smile"]]) > 0.1


def test_static_poses_stay_in_range_and_vary():
    rng = np.random.default_rng(0)
    samples = np.stack([random_static_angles(rng) for _ in range(50)])
    low = np.array([STATIC_RANGES[n][0] for n in JOINTS])
    high = np.array([STATIC_RANGES[n][1] for n in JOINTS])
    assert (samples >= low - 1e-9).all() and (samples <= high + 1e-9).all()
    assert samples.std(0).min() > 0
