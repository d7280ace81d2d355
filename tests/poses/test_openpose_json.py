"""OpenPose JSON and our sequence file: round trips, the three accepted inputs, bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from magicpose.errors import InputError
from magicpose.poses.openpose_json import load_people, load_poses, pose_to_person, save_poses
from magicpose.poses.render import draw_openpose
from magicpose.poses.types import Pose, PoseSequence

from .conftest import reference, standing_pose


def _sequence() -> PoseSequence:
    first = standing_pose()
    second = first.transformed(1.0, np.array([10.25, -3.5]))
    second.left_hand[:] = 0  # an absent part must come back absent
    return PoseSequence([first, second, first.copy()], 512, 512, fps=24.0, found=[True, True, False])


def test_sequence_file_round_trip_is_exact(tmp_path):
    sequence = _sequence()
    save_poses(sequence, tmp_path / "poses.json")
    loaded = load_poses(tmp_path / "poses.json")
    assert (loaded.width, loaded.height, loaded.fps) == (512, 512, 24.0)
    assert loaded.found.tolist() == [True, True, False]
    for original, restored in zip(sequence.frames, loaded.frames):
        for part in Pose.PARTS:
            np.testing.assert_array_equal(original.part(part), restored.part(part))
    assert not loaded[1].has("left_hand")
    # full precision keeps renders identical after a round trip
    assert np.array_equal(draw_openpose(sequence[1], 512, 512), draw_openpose(loaded[1], 512, 512))


def test_person_entry_uses_openpose_keys_and_empty_lists_for_absent_parts():
    person = pose_to_person(standing_pose(with_hands=False))
    assert len(person["pose_keypoints_2d"]) == 54 and len(person["face_keypoints_2d"]) == 210
    assert person["hand_left_keypoints_2d"] == [] and person["hand_right_keypoints_2d"] == []


def test_single_openpose_file_with_several_people_keeps_the_largest():
    people, size = load_people(reference("openpose_render", "case20.json"))
    assert len(people) == 3 and size == (768, 512)
    sequence = load_poses(reference("openpose_render", "case20.json"))
    assert len(sequence) == 1 and sequence.size == (768, 512)
    extent = lambda pose: np.ptp(pose.present_points(), axis=0).prod()  # noqa: E731
    assert extent(sequence[0]) == max(extent(p) for p in people)


def test_folder_of_openpose_frames_in_natural_order(tmp_path):
    pose = standing_pose()
    for index in (2, 10, 1):
        shifted = pose.transformed(1.0, np.array([index, 0.0]))
        (tmp_path / f"frame_{index}_keypoints.json").write_text(json.dumps({"people": [pose_to_person(shifted)]}))
    (tmp_path / "frame_5_keypoints.json").write_text(json.dumps({"people": []}))
    with pytest.raises(InputError, match="--size"):
        load_poses(tmp_path)
    sequence = load_poses(tmp_path, size=(512, 512), fps=12)
    assert sequence.fps == 12 and len(sequence) == 4
    assert sequence.found.tolist() == [True, True, False, True]
    noses = [frame.body[0, 0] for frame in sequence.frames]
    # the frame with nobody is filled halfway between its neighbours (frames 2 and 10)
    assert noses == [pose.body[0, 0] + 1, pose.body[0, 0] + 2, pose.body[0, 0] + 6, pose.body[0, 0] + 10]


def test_official_71_point_faces_are_accepted(tmp_path):
    person = pose_to_person(standing_pose())
    person["face_keypoints_2d"] = person["face_keypoints_2d"] + [1.0, 2.0, 0.5]
    (tmp_path / "frame.json").write_text(json.dumps({"people": [person], "canvas_width": 512, "canvas_height": 512}))
    assert load_poses(tmp_path / "frame.json")[0].face.shape == (70, 3)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "cannot read"),
        ('{"frames": []}', "no 'people' list"),
        ('{"people": [{"pose_keypoints_2d": [1, 2]}]}', "25 \\(BODY_25\\)"),
        ('{"format": "magicpose.poses", "version": 99}', "version"),
        (
            '{"format": "magicpose.poses", "version": 1, "fps": 30, "width": 8, "height": 8, "frames": []}',
            "at least one frame",
        ),
    ],
)
def test_bad_files_are_input_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        load_poses(path, size=(8, 8))


def test_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_poses(tmp_path / "nowhere.json")


def test_save_is_atomic_on_failure(tmp_path):
    sequence = _sequence()
    sequence.fps = float("nan")
    with pytest.raises(ValueError):
        save_poses(sequence, tmp_path / "poses.json")
    assert list(tmp_path.iterdir()) == []


def test_the_followed_person_survives_a_round_trip_and_old_files_still_load(tmp_path):
    sequence = _sequence()
    sequence.person = {
        "choice": 1,
        "mode": "people",
        "first_frame": 0,
        "people_first_frame": 2,
        "people_seen": 3,
        "boxes": [[10.5, 20.0, 110.0, 300.25], None, [12.0, 21.0, 112.0, 301.0]],
    }
    save_poses(sequence, tmp_path / "poses.json")
    assert load_poses(tmp_path / "poses.json").person == sequence.person
    data = json.loads((tmp_path / "poses.json").read_text())
    del data["person"]  # a file from before person tracking
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = load_poses(tmp_path / "old.json")
    assert old.person is None and len(old) == 3
    data["person"] = {"choice": "largest", "boxes": [None]}  # one box for three frames
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="one entry per frame"):
        load_poses(tmp_path / "bad.json")


def test_a_folder_without_its_canvas_size_can_take_it_from_the_keypoints_with_a_warning(tmp_path):
    pose = standing_pose()  # within a 512 x 512 frame
    for index in range(3):
        (tmp_path / f"f_{index}_keypoints.json").write_text(json.dumps({"people": [pose_to_person(pose)]}))
    with pytest.warns(UserWarning, match=r"assuming \d+x\d+ from the keypoints' extent.*--pose-size"):
        sequence = load_poses(tmp_path, infer_size=True)
    extent = pose.present_points().max(axis=0)
    assert (sequence.width, sequence.height) == tuple(int(np.ceil(v * 1.05 / 8) * 8) for v in extent)
    assert all(v >= e for v, e in zip((sequence.width, sequence.height), extent))
    assert (load_poses(tmp_path, size=(640, 480), infer_size=True).width) == 640  # a given size wins, silently


def test_normalised_keypoints_without_a_size_need_one(tmp_path):
    pose = standing_pose().transformed(1 / 512, np.zeros(2))
    (tmp_path / "f_0_keypoints.json").write_text(json.dumps({"people": [pose_to_person(pose)]}))
    with pytest.raises(InputError, match="normalised keypoints.*--pose-size"):
        load_poses(tmp_path, infer_size=True)
