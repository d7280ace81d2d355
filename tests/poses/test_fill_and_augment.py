"""Filling frames without a person, and the paper's face/hand masking augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from magicpose.poses.augment import mask_face_and_hands
from magicpose.poses.fill import fill_missing

from .conftest import standing_pose


def test_short_gaps_are_interpolated_and_marked():
    start = standing_pose()
    end = start.transformed(1.0, np.array([30.0, 0.0]))
    filled, found = fill_missing([start, None, None, end], max_gap=2)
    assert found.tolist() == [True, False, False, True]
    np.testing.assert_allclose(filled[1].body[:, 0], start.body[:, 0] + 10)
    np.testing.assert_allclose(filled[2].left_hand[:, 0], start.left_hand[:, 0] + 20)


def test_long_gaps_and_ends_hold_the_nearest_detection():
    start = standing_pose()
    end = start.transformed(1.0, np.array([40.0, 0.0]))
    filled, found = fill_missing([None, start, None, None, None, end, None], max_gap=2)
    assert found.tolist() == [False, True, False, False, False, True, False]
    expected_shift = [0, 0, 0, 40, 40, 40, 40]  # hold, then jump half way, never a sliding ghost
    for pose, shift in zip(filled, expected_shift):
        np.testing.assert_allclose(pose.body[:, 0], start.body[:, 0] + shift)


def test_part_seen_on_one_side_only_is_held():
    with_hand = standing_pose()
    without_hand = standing_pose(with_hands=False)
    filled, _ = fill_missing([with_hand, None, without_hand], max_gap=5)
    assert filled[1].has("left_hand")


def test_no_pose_at_all_is_an_error():
    with pytest.raises(ValueError):
        fill_missing([None, None])


def test_masking_frequencies_follow_the_probabilities():
    rng = np.random.default_rng(0)
    pose = standing_pose()
    trials = [mask_face_and_hands(pose, rng, face_probability=0.2, hand_probability=0.5) for _ in range(4000)]
    face_masked = np.mean([not t.has("face") for t in trials])
    left_masked = np.array([not t.has("left_hand") for t in trials])
    right_masked = np.array([not t.has("right_hand") for t in trials])
    assert face_masked == pytest.approx(0.2, abs=0.025)
    assert left_masked.mean() == pytest.approx(0.5, abs=0.03) and right_masked.mean() == pytest.approx(0.5, abs=0.03)
    # independent hands: both masked about a quarter of the time
    assert (left_masked & right_masked).mean() == pytest.approx(0.25, abs=0.03)
    assert all(np.array_equal(t.body, pose.body) for t in trials)  # the body is never masked


def test_masking_is_reproducible_and_leaves_the_input_alone():
    pose = standing_pose()
    first = mask_face_and_hands(pose, np.random.default_rng(7), 1.0, 1.0)
    assert not first.has("face") and not first.has("left_hand") and not first.has("right_hand")
    assert pose.has("face") and pose.has("left_hand")
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(3)
        runs.append(
            [
                (m.has("face"), m.has("left_hand"), m.has("right_hand"))
                for m in (mask_face_and_hands(pose, rng) for _ in range(50))
            ]
        )
    assert runs[0] == runs[1] and len(set(runs[0])) > 1
    untouched = mask_face_and_hands(pose, np.random.default_rng(1), 0.0, 0.0)
    assert untouched.has("face") and untouched.has("left_hand") and untouched.has("right_hand")
    with pytest.raises(ValueError):
        mask_face_and_hands(pose, np.random.default_rng(1), face_probability=1.5)
