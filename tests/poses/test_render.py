"""The renderer against the official annotator's output: every reference case, pixel for pixel."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from magicpose.poses import render
from magicpose.poses.openpose_json import load_people
from magicpose.poses.types import Pose

from .conftest import reference

CASES = [f"case{index:02d}" for index in range(1, 27)]


@pytest.mark.parametrize("case", CASES)
def test_pixel_identical_to_official_annotator(case):
    folder = reference("openpose_render")
    spec = json.loads((folder / f"{case}.json").read_text())
    people, size = load_people(folder / f"{case}.json")
    draw = spec["draw"]
    image = render.draw_openpose(people, *size, body=draw["body"], hands=draw["hand"], face=draw["face"])
    expected = np.asarray(Image.open(folder / f"{case}.png").convert("RGB"))
    assert image.shape == expected.shape and image.dtype == np.uint8
    differing = int((image != expected).any(axis=2).sum())
    assert differing == 0, f"{case}: {differing} pixels differ from the official render"


def test_constants_match_the_documented_conventions():
    conventions = json.loads(reference("openpose_render", "conventions.json").read_text())
    limbs = [(limb["a"], limb["b"]) for limb in conventions["body_limbs"]]
    assert tuple(limbs) == render.LIMBS
    assert [tuple(limb["color_full"]) for limb in conventions["body_limbs"]] == list(render.JOINT_COLORS[:17])


def test_hand_edge_colours_are_the_rounded_hsv_rainbow():
    import colorsys

    for index, colour in enumerate(render.HAND_EDGE_COLORS):
        expected = np.array(colorsys.hsv_to_rgb(index / 20, 1.0, 1.0)) * 255
        assert np.abs(np.array(colour) - expected).max() <= 0.5 + 1e-9


def test_integer_hand_points_follow_the_float32_round_trip():
    # At W=768, 255 integer x values land just below the integer after float32 normalisation.
    shifted = [x for x in range(768) if render._hand_face_pixel(x, 768) == x - 1]
    assert len(shifted) == 255
    assert all(render._hand_face_pixel(x, 512) == x for x in range(512))


def test_switches_leave_parts_out(standing):
    full = render.draw_openpose(standing, 512, 512)
    no_hands = render.draw_openpose(standing, 512, 512, hands=False)
    no_face = render.draw_openpose(standing, 512, 512, face=False)
    blue = lambda image: int(((image == (0, 0, 255)).all(axis=2)).sum())  # noqa: E731 - hand points
    white = lambda image: int(((image == 255).all(axis=2)).sum())  # noqa: E731 - face dots
    assert blue(full) > 0 and blue(no_hands) < blue(full)
    assert white(full) > 0 and white(no_face) == 0
    assert not render.draw_openpose(standing, 512, 512, body=False, hands=False, face=False).any()


def test_empty_pose_draws_a_black_canvas():
    image = render.draw_openpose(Pose(), 64, 48)
    assert image.shape == (48, 64, 3) and not image.any()
