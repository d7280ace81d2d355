"""Pose files as other tools write them: OpenPose BODY_25, COCO-17 / COCO-WholeBody (DWPose-based tools),
68-point faces, `null` parts, normalised keypoints; frames with nobody filled; broken values refused with the
file, frame and field named."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from magicpose.errors import InputError
from magicpose.poses.openpose_json import load_poses, pose_to_person, save_poses
from magicpose.poses.types import BODY_NAMES, PoseSequence

from .conftest import standing_pose

# OpenPose doc/02_output.md, "Pose Output Format (BODY_25)"
BODY_25_NAMES = (
    "nose neck right_shoulder right_elbow right_wrist left_shoulder left_elbow left_wrist mid_hip right_hip "
    "right_knee right_ankle left_hip left_knee left_ankle right_eye left_eye right_ear left_ear left_big_toe "
    "left_small_toe left_heel right_big_toe right_small_toe right_heel"
).split()
# MS-COCO keypoints (COCO-WholeBody's first 17)
COCO_17_NAMES = (
    "nose left_eye right_eye left_ear right_ear left_shoulder right_shoulder left_elbow right_elbow left_wrist "
    "right_wrist left_hip right_hip left_knee right_knee left_ankle right_ankle"
).split()


def _named_body() -> dict[str, list[float]]:
    body = standing_pose().body
    return {name: [float(x), float(y), 0.9] for name, (x, y, _) in zip(BODY_NAMES, body)}


def _flat(names, named, default=(999.0, 999.0, 0.8)) -> list[float]:
    return [value for name in names for value in named.get(name, default)]


def _openpose_file(tmp_path, person: dict, **extra) -> dict:
    path = tmp_path / "frame_000000000000_keypoints.json"
    path.write_text(json.dumps({"version": 1.3, "people": [person], **extra}))
    return path


def test_openpose_body_25_is_mapped_by_name_to_the_18_point_layout(tmp_path):
    named = _named_body()
    person = {"pose_keypoints_2d": _flat(BODY_25_NAMES, named), "face_keypoints_2d": [], "hand_left_keypoints_2d": []}
    pose = load_poses(_openpose_file(tmp_path, person), size=(512, 512))[0]
    np.testing.assert_array_equal(pose.body, standing_pose().body * [1, 1, 0.9])  # mid-hip and feet dropped
    assert not pose.has("face") and not pose.has("left_hand")


def test_coco_17_and_wholebody_23_get_a_neck_between_the_shoulders(tmp_path):
    named = _named_body()
    for count in (17, 23):
        names = COCO_17_NAMES + ["foot"] * (count - 17)
        pose = load_poses(_openpose_file(tmp_path, {"pose_keypoints_2d": _flat(names, named)}), size=(512, 512))[0]
        expected = standing_pose().body * [1, 1, 0.9]
        np.testing.assert_array_equal(pose.body, expected)  # the standing pose's neck is its shoulders' midpoint
    named.pop("right_shoulder")
    pose = load_poses(
        _openpose_file(tmp_path, {"pose_keypoints_2d": _flat(COCO_17_NAMES, named, (0, 0, 0))}), size=(512, 512)
    )[0]
    assert pose.body[1, 2] == 0 and pose.body[2, 2] == 0  # one shoulder unseen: no neck is made up


def test_a_whole_body_list_of_133_points_fills_face_and_hands(tmp_path):
    named = _named_body()
    face = [[100.0 + i, 50.0, 0.7] for i in range(68)]
    left, right = ([[x + i, 300.0, 0.6] for i in range(21)] for x in (300.0, 150.0))
    values = _flat(COCO_17_NAMES + ["foot"] * 6, named) + [v for point in face + left + right for v in point]
    pose = load_poses(
        _openpose_file(tmp_path, {"pose_keypoints_2d": values, "face_keypoints_2d": None}), size=(512, 512)
    )[0]
    np.testing.assert_array_equal(pose.body, standing_pose().body * [1, 1, 0.9])
    np.testing.assert_array_equal(pose.face[:68], face)
    assert (pose.face[68:, 2] == 0).all()  # no pupils in a 68-point face
    np.testing.assert_array_equal(pose.left_hand, left)
    np.testing.assert_array_equal(pose.right_hand, right)


def test_controlnet_aux_style_null_parts_and_normalised_keypoints(tmp_path):
    person = pose_to_person(standing_pose(with_hands=False))
    person["pose_keypoints_2d"] = [v / 512 if i % 3 != 2 else v for i, v in enumerate(person["pose_keypoints_2d"])]
    person.update(hand_left_keypoints_2d=None, hand_right_keypoints_2d=None, face_keypoints_2d=None)
    sequence = load_poses(_openpose_file(tmp_path, person, canvas_width=512, canvas_height=512))
    np.testing.assert_allclose(sequence[0].body, standing_pose().body, atol=1e-9)
    assert not sequence[0].has("face") and sequence.size == (512, 512)


def test_frames_with_nobody_or_marked_not_found_are_filled_and_counted(tmp_path):
    pose = standing_pose()
    person = lambda dx: [pose_to_person(pose.transformed(1.0, np.array([dx, 0.0])))]  # noqa: E731
    frames = [
        {"found": True, "people": person(0)},
        {"found": True, "people": []},  # OpenPose saw nobody
        {"found": True, "people": person(10)},
        {"found": False, "people": []},
        {"found": False, "people": person(30)},  # filled by the tool that wrote it: kept, counted as filled
        {"people": person(40)},
    ]
    path = tmp_path / "poses.json"
    path.write_text(
        json.dumps(
            {"format": "magicpose.poses", "version": 1, "fps": 24, "width": 512, "height": 512, "frames": frames}
        )
    )
    sequence = load_poses(path)
    assert sequence.found.tolist() == [True, False, True, False, False, True] and sequence.missing == 3
    noses = [frame.body[0, 0] - pose.body[0, 0] for frame in sequence.frames]
    assert noses == [0, 5, 10, 20, 30, 40]  # gaps interpolated between the neighbours seen
    save_poses(sequence, tmp_path / "again.json")
    assert load_poses(tmp_path / "again.json").found.tolist() == sequence.found.tolist()


def _sequence_text(**changes) -> str:
    data = {
        "format": "magicpose.poses",
        "version": 1,
        "fps": 24,
        "width": 512,
        "height": 512,
        "frames": [{"found": True, "people": [pose_to_person(standing_pose())]} for _ in range(3)],
    }
    data.update(changes)
    return json.dumps(data)


def _with_keypoint(value) -> str:
    text = _sequence_text()
    data = json.loads(text)
    data["frames"][2]["people"][0]["pose_keypoints_2d"][4] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (_sequence_text(frames=[None]), ["frame 0", "'people'"]),
        (_sequence_text(frames=[{"people": None}]), ["frame 0", "'people'"]),
        (_sequence_text(fps=math.nan), ["'fps'", "NaN"]),
        (_sequence_text(fps=1e-9), ["'fps'", "1e-09"]),
        (_sequence_text(fps=math.inf), ["'fps'"]),
        (_sequence_text(width=1e30), ["'width'"]),
        (_sequence_text(height="512"), ["'height'"]),
        (_with_keypoint(None), ["frame 2", "pose_keypoints_2d", "value 4 is null"]),
        (_with_keypoint("7"), ["frame 2", "pose_keypoints_2d", "value 4"]),
        (_with_keypoint(math.nan), ["frame 2", "pose_keypoints_2d", "value 4 is NaN"]),
        (_with_keypoint(1e30), ["frame 2", "pose_keypoints_2d", "value 4 is 1e+30"]),
        (_with_keypoint(5000.0), ["frame 2", "body", "(256, 5000)", "512x512"]),
    ],
)
def test_broken_values_are_refused_naming_file_frame_and_field(tmp_path, text, words):
    path = tmp_path / "poses.json"
    path.write_text(text)
    with pytest.raises(InputError) as error:
        load_poses(path)
    assert str(path) in str(error.value) and all(word in str(error.value) for word in words), str(error.value)


def test_a_found_flag_must_be_a_boolean_and_every_openpose_file_is_checked(tmp_path):
    path = tmp_path / "poses.json"
    path.write_text(_sequence_text(frames=[{"found": "yes", "people": []}]))
    with pytest.raises(InputError, match="frame 0: 'found' must be true or false"):
        load_poses(path)
    folder = tmp_path / "frames"
    folder.mkdir()
    good = pose_to_person(standing_pose())
    (folder / "f_1.json").write_text(json.dumps({"people": [good]}))
    (folder / "f_2.json").write_text(json.dumps({"people": [{**good, "face_keypoints_2d": [1.0] * 10}]}))
    with pytest.raises(InputError, match=r"f_2.json people\[0\] face_keypoints_2d must hold 70, 68 or 71"):
        load_poses(folder, size=(512, 512))


def test_pose_sequences_keep_loading_their_own_files(tmp_path):
    sequence = PoseSequence([standing_pose()] * 2, 512, 512, fps=30.0)
    save_poses(sequence, tmp_path / "p.json")
    assert load_poses(tmp_path / "p.json").found.tolist() == [True, True]


def test_an_openpose_body_25_folder_drives_with_its_empty_frames_counted_as_filled(tmp_path):
    from magicpose.workflows.animation import read_driving

    named = _named_body()
    for index in range(4):
        people = [] if index == 2 else [{"pose_keypoints_2d": _flat(BODY_25_NAMES, named)}]
        (tmp_path / f"v_{index:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))
    driving = read_driving(tmp_path, pose_size=(512, 512))
    assert len(driving.poses) == 4 and driving.missing == 1 and driving.poses.found.tolist() == [1, 1, 0, 1]
    np.testing.assert_array_equal(driving.poses[2].body, driving.poses[1].body)  # filled from its neighbours
