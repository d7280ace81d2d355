"""Real mediapipe Holistic on a real photo and on a short video made from it."""

from __future__ import annotations

import numpy as np
import pytest

from magicpose.errors import InputError
from magicpose.media import read_video
from magicpose.poses.detect import PoseDetector


@pytest.fixture(scope="module")
def detector():
    with PoseDetector() as detector:
        yield detector


def test_detects_the_astronaut_in_the_photo(detector, astronaut):
    pose = detector.detect_image(astronaut)
    assert pose is not None
    # XNNPACK results vary in the last decimals across CPUs; the recorded run is within a few px
    np.testing.assert_allclose(pose.body[0, :2], (222.74, 127.96), atol=4)  # nose
    np.testing.assert_allclose(pose.body[5, :2], (306.24, 256.64), atol=4)  # left shoulder
    np.testing.assert_allclose(pose.body[2, :2], (112.66, 239.95), atol=4)  # right shoulder
    assert pose.body[1, 2] > 0.9 and (pose.body[8:14, 2] == 0).all()  # neck yes, legs off-frame no
    assert (pose.face[:, 2] > 0).all()
    # the iris model puts each pupil inside its eye contour
    for pupil, contour in ((68, slice(36, 42)), (69, slice(42, 48))):
        low, high = pose.face[contour, :2].min(axis=0), pose.face[contour, :2].max(axis=0)
        assert (pose.face[pupil, :2] >= low - 1).all() and (pose.face[pupil, :2] <= high + 1).all()


def test_empty_image_gives_none(detector):
    assert detector.detect_image(np.zeros((128, 128, 3), dtype=np.uint8)) is None
    with pytest.raises(InputError, match="uint8"):
        detector.detect_image(np.zeros((8, 8), dtype=np.float32))


def test_video_tracks_marks_and_fills(astronaut_video):
    with PoseDetector(smooth=False) as detector:  # unfiltered, so positions follow frame by frame
        sequence = detector.detect_video(astronaut_video, progress=False)
    assert len(sequence) == 5 and sequence.size == (256, 256) and sequence.fps == pytest.approx(12)
    assert sequence.found.tolist() == [True, True, False, True, True]
    noses = np.array([pose.body[0, 0] for pose in sequence.frames])
    steps = np.diff(noses[[0, 1, 3, 4]])
    assert np.allclose(steps, [4, 8, 4], atol=1.5)  # follows the 4 px/frame slide
    assert noses[2] == pytest.approx((noses[1] + noses[3]) / 2)  # the black frame is interpolated


def test_smoothed_video_moves_the_same_way(detector, astronaut_video):
    sequence = detector.detect_video(astronaut_video, progress=False)
    assert sequence.found.tolist() == [True, True, False, True, True]
    noses = np.array([pose.body[0, 0] for pose in sequence.frames])
    assert (np.diff(noses) > 0).all() and 8 < noses[-1] - noses[0] < 20  # 16 px in all, with some lag


def test_video_with_nobody_is_an_input_error(detector):
    with pytest.raises(InputError, match="no person"):
        detector.detect_video([np.zeros((64, 64, 3), dtype=np.uint8)] * 3, progress=False)


def test_frame_list_and_file_agree(detector, astronaut_video):
    frames, fps = read_video(astronaut_video)
    from_list = detector.detect_video(frames, progress=False, fps=fps)
    from_file = detector.detect_video(astronaut_video, progress=False)
    assert from_list.found.tolist() == from_file.found.tolist()
    np.testing.assert_allclose(from_list[0].body, from_file[0].body)
