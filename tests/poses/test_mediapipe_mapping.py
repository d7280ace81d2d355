"""The Holistic -> OpenPose mapping on stored real-photo landmarks (no mediapipe run needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from magicpose.poses import mediapipe_mapping as mapping
from magicpose.poses.mediapipe_mapping import HolisticLandmarks, holistic_to_pose

from .conftest import reference


@pytest.fixture(scope="module")
def landmarks() -> dict:
    return json.loads(reference("real_media", "mediapipe_holistic_landmarks_images.json").read_text())


def test_tables_are_complete_and_use_valid_indices():
    assert sorted(mapping.BLAZEPOSE_TO_COCO18) == [i for i in range(18) if i != mapping.NECK]
    assert len(set(mapping.BLAZEPOSE_TO_COCO18.values())) == 17 and max(mapping.BLAZEPOSE_TO_COCO18.values()) < 33
    assert len(mapping.FACE_MESH_TO_OPENPOSE_68) == 68 and len(set(mapping.FACE_MESH_TO_OPENPOSE_68)) == 68
    assert max(mapping.FACE_MESH_TO_OPENPOSE_68) < 468
    assert mapping.HAND_TO_OPENPOSE == tuple(range(21))


def test_astronaut_body_matches_the_recorded_key_points(landmarks):
    entry = landmarks["skimage/astronaut.png"]
    pose = holistic_to_pose(HolisticLandmarks.from_dict(entry), 512, 512)
    body = pose.body
    np.testing.assert_allclose(body[0, :2], (222.74, 127.96), atol=0.01)  # nose
    np.testing.assert_allclose(body[5, :2], (306.24, 256.64), atol=0.01)  # left shoulder
    np.testing.assert_allclose(body[2, :2], (112.66, 239.95), atol=0.01)  # right shoulder
    np.testing.assert_allclose(body[1, :2], (body[2, :2] + body[5, :2]) / 2)  # neck = shoulder midpoint
    np.testing.assert_allclose(body[14, :2], (204.95, 103.34), atol=0.01)  # right eye
    # the hips sit at or beyond the bottom edge with visibility <= 0.27: missing, as are the legs
    assert (body[8:14, 2] == 0).all()
    # left wrist visibility 0.126 < 0.3: missing; right wrist 0.32: present
    assert body[7, 2] == 0 and body[4, 2] > 0
    assert not pose.has("left_hand") and not pose.has("right_hand")


def test_face_layout_on_a_frontal_face(landmarks):
    entry = landmarks["skimage/astronaut.png"]
    face = holistic_to_pose(HolisticLandmarks.from_dict(entry), 512, 512).face
    assert (face[:, 2] > 0).all()
    # The person's right side is on the image left: jaw 0, right eye 36-41 and pupil 68 there.
    assert face[0, 0] < face[8, 0] < face[16, 0]
    assert face[8, 1] > max(face[0, 1], face[16, 1])  # the chin is below the ears' level
    right_eye, left_eye = face[36:42, :2], face[42:48, :2]
    assert right_eye[:, 0].max() < left_eye[:, 0].min()
    assert face[17:27, 1].mean() < face[36:48, 1].mean() < face[27:36, 1].mean() < face[48:68, 1].mean()
    # 468 points (no iris refinement): pupils are the eye contour centres
    np.testing.assert_allclose(face[68, :2], right_eye.mean(axis=0))
    np.testing.assert_allclose(face[69, :2], left_eye.mean(axis=0))


def test_iris_landmarks_become_the_pupils(landmarks):
    entry = dict(landmarks["skimage/astronaut.png"])
    mesh = np.asarray(entry["face"])
    iris = np.zeros((10, 3))
    iris[0] = (203.5, 100.9, 0)
    iris[5] = (246.3, 103.5, 0)
    entry["face"] = np.vstack([mesh, iris])
    face = holistic_to_pose(HolisticLandmarks.from_dict(entry), 512, 512).face
    np.testing.assert_allclose(face[68, :2], (203.5, 100.9))
    np.testing.assert_allclose(face[69, :2], (246.3, 103.5))


def test_holistic_left_hand_is_the_persons_left(landmarks):
    entry = landmarks["opencv-doc/messi5.jpg"]
    pose = holistic_to_pose(HolisticLandmarks.from_dict(entry), entry["width"], entry["height"])
    assert pose.has("left_hand") and pose.has("right_hand")
    left_wrist, right_wrist = pose.body[7, :2], pose.body[4, :2]
    hand_root = pose.left_hand[0, :2]
    assert np.linalg.norm(hand_root - left_wrist) < np.linalg.norm(hand_root - right_wrist)
    np.testing.assert_allclose(pose.left_hand[:, :2], np.asarray(entry["left_hand"])[:, :2])


def test_points_outside_the_frame_are_missing(landmarks):
    entry = landmarks["insightface-sdist/Tom_Hanks_54745.png"]  # shoulders extrapolated outside
    pose = holistic_to_pose(HolisticLandmarks.from_dict(entry), 112, 112)
    present = pose.present_points()
    assert len(present) > 0
    assert (present >= 0).all() and (present < 112).all()


def test_nothing_detected_gives_none(landmarks):
    assert holistic_to_pose(HolisticLandmarks.from_dict(landmarks["ultralytics/zidane.jpg"]), 1280, 720) is None
