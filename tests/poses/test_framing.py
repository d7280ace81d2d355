"""Fitting a photo (and its poses) of one shape into an output frame of another: pad, crop, person."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest

from magicpose.poses.framing import (
    FIT_MODES,
    border_colour,
    crop_framing,
    fit,
    pad_framing,
    person_box,
    person_framing,
)
from magicpose.poses.types import Pose, PoseSequence

from .conftest import standing_pose


def photo_with_person(width: int, height: int, scale: float, shift: tuple[float, float]):
    """A grey photo with the standing test person drawn as white dots at their joints, and their pose."""
    pose = standing_pose().transformed(scale, np.array(shift))
    image = np.full((height, width, 3), (90, 120, 150), dtype=np.uint8)
    for x, y in pose.body[:, :2]:
        image[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3] = 255
    return image, pose


def bright_spot(image: np.ndarray, near: np.ndarray, radius: int = 6) -> np.ndarray:
    """Centroid of the white pixels within `radius` of `near`."""
    x0, y0 = (max(int(v) - radius, 0) for v in near)
    window = image[y0 : int(near[1]) + radius + 1, x0 : int(near[0]) + radius + 1].astype(float).min(axis=2)
    weights = np.clip(window - 100, 0, None)  # the background is (90, 120, 150): its darkest channel 90
    ys, xs = np.mgrid[: window.shape[0], : window.shape[1]]
    return np.array([(xs * weights).sum() / weights.sum() + x0, (ys * weights).sum() / weights.sum() + y0])


def test_same_shape_is_a_plain_resize_in_every_mode():
    image, pose = photo_with_person(256, 384, 0.6, (0, 0))
    expected = np.asarray(PIL.Image.fromarray(image).resize((64, 96), PIL.Image.LANCZOS))
    for mode in FIT_MODES:
        framing = fit(mode, (256, 384), (64, 96), [pose])
        assert framing.scale == pytest.approx(0.25) and framing.offset == pytest.approx((0, 0)), mode
        assert not framing.padded
        np.testing.assert_array_equal(framing.image(image), expected)


def test_pad_keeps_the_whole_photo_centred_on_its_border_colour():
    image, _ = photo_with_person(400, 200, 0.5, (0, 0))
    framing = pad_framing((400, 200), (64, 64))
    out = framing.image(image)
    assert framing.scale == pytest.approx(0.16) and framing.offset == pytest.approx((0, 16)) and framing.padded
    assert (out[:16] == border_colour(image)).all() and (out[48:] == border_colour(image)).all()
    assert framing.output_box((0, 0, 400, 200)) == pytest.approx((0, 16, 64, 48))
    np.testing.assert_array_equal(border_colour(image), (90, 120, 150))


def test_crop_is_todays_centre_crop():
    image, _ = photo_with_person(300, 200, 0.5, (0, 0))
    framing = crop_framing((300, 200), (64, 64))
    assert framing.scale == pytest.approx(64 / 200) and framing.offset == pytest.approx((-16, 0))
    expected = np.asarray(PIL.Image.fromarray(image).resize((64, 64), PIL.Image.LANCZOS, box=(50, 0, 250, 200)))
    np.testing.assert_array_equal(framing.image(image), expected)


@pytest.mark.parametrize("mode", FIT_MODES)
def test_the_image_lands_where_its_pose_does(mode):
    # a person left of centre in a wide photo, fitted into a portrait frame
    image, pose = photo_with_person(900, 500, 0.9, (90, 20))
    framing = fit(mode, (900, 500), (200, 300), [pose])
    out, moved = framing.image(image), framing.pose(pose)
    checked = 0
    for index in (1, 4, 10, 13):  # neck, right wrist, ankles
        x, y = moved.body[index, :2]
        if 6 <= x < 194 and 6 <= y < 294:
            np.testing.assert_allclose(bright_spot(out, moved.body[index, :2]), (x, y), atol=1.0)
            checked += 1
    assert checked >= 2


def test_an_off_centre_person_is_cut_by_crop_and_kept_by_person_and_pad():
    image, pose = photo_with_person(1200, 500, 0.9, (-140, 30))  # a person at the left edge
    size = (300, 400)
    crop = fit("crop", (1200, 500), size, [pose])
    assert crop.cuts(pose)
    for mode in ("person", "pad"):
        framing = fit(mode, (1200, 500), size, [pose])
        assert not framing.cuts(pose), mode
        points = framing.pose(pose).present_points()
        assert (points >= 0).all() and (points[:, 0] <= size[0]).all() and (points[:, 1] <= size[1]).all()
    person = fit("person", (1200, 500), size, [pose])
    # at the crop's size (not zoomed out as pad is), no padding, as far left as the photo allows
    assert person.scale == pytest.approx(crop.scale) and not person.padded and person.offset[0] == pytest.approx(0)
    assert fit("pad", (1200, 500), size, [pose]).scale < person.scale


def test_a_person_too_tall_for_the_crop_gets_the_smallest_padded_box():
    # a tall person filling a landscape photo, into a landscape frame of a wider shape
    image, pose = photo_with_person(500, 400, 0.85, (10, -60))
    box = person_box([pose], (500, 400))
    framing = person_framing((500, 400), (400, 200), box)
    assert framing.padded and not framing.cuts(pose)
    left, top, right, bottom = framing.output_box(box)
    assert top >= 0 and bottom <= 200 and min(top, 200 - bottom) < 15  # held tightly, with the margin


def test_person_box_reaches_over_the_head_and_without_anyone_person_is_the_crop():
    pose = standing_pose(with_hands=False)
    left, top, right, bottom = person_box([pose], (512, 512))
    assert (left, right, bottom) == (186, 326, 430) and top == pytest.approx(
        min(pose.face[:, 1].min(), 100 - 0.6 * 50)
    )
    assert top < pose.present_points()[:, 1].min()  # above every keypoint: the top of the head
    assert person_box([Pose()], (512, 512)) is None
    nobody = fit("person", (800, 400), (64, 64), [])
    assert nobody.mode == "person" and nobody.scale == crop_framing((800, 400), (64, 64)).scale


def test_driving_poses_keep_their_sequence_data_and_a_whole_dance_stays_in():
    frames = [standing_pose().transformed(0.5, np.array([60.0 * i, 100.0])) for i in range(8)]  # walking right
    sequence = PoseSequence(frames, 1280, 720, fps=25.0, found=[True] * 7 + [False], person={"mode": "single"})
    framing = fit("person", sequence.size, (256, 256), frames)
    framed = framing.poses(sequence)
    assert framed.size == (256, 256) and framed.fps == 25.0 and framed.person == {"mode": "single"}
    assert framed.found.tolist() == [True] * 7 + [False]
    points = np.concatenate([pose.present_points() for pose in framed.frames])
    assert points.min() >= 0 and points.max() <= 256
    assert any(fit("crop", sequence.size, (256, 256), frames).cuts(pose) for pose in frames)


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="pad, crop, person"):
        fit("zoom", (10, 10), (8, 8))


def test_the_margin_never_forces_padding_when_the_person_fits_the_crop():
    # a head-and-shoulders portrait into a wide frame: the person fits the crop's height, their margin does not
    width, height = 512, 600
    box = (100.0, 60.0, 420.0, 300.0)  # 240 px tall; the 16:9 crop is 288 px tall
    framing = person_framing((width, height), (512, 288), box)
    assert not framing.padded and framing.scale == pytest.approx(1.0)
    left, top, right, bottom = framing.output_box(box)
    assert top >= 0 and bottom <= 288 and top == pytest.approx(288 - bottom, abs=1)  # centred on them
