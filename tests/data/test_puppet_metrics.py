"""Puppet-world metrics: known values, masks respected, agreement with scikit-image's SSIM."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from magicpose.data.puppet.parts import Part
from magicpose.data.puppet.world import PuppetVideo, video_spec
from magicpose.evaluation.puppet_metrics import (
    identity_colour_error,
    mask_iou,
    masked_psnr,
    masked_ssim,
    person_mask_from_background,
    ssim_map,
)


def test_masked_psnr_known_value_and_ignores_outside():
    target = np.full((16, 16, 3), 100, np.uint8)
    generated = target.copy()
    mask = np.zeros((16, 16), bool)
    mask[4:8, 4:8] = True
    generated[mask] += 10
    generated[0, 0] = 255  # outside the mask: must not count
    assert masked_psnr(generated, target, mask) == pytest.approx(-20 * math.log10(10 / 255))
    assert masked_psnr(target, target, mask) == math.inf
    assert math.isnan(masked_psnr(generated, target, np.zeros((16, 16), bool)))


def test_ssim_map_matches_scikit_image():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 48, 3)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    _, expected = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=2, full=True
    )
    assert np.allclose(ssim_map(a, b), expected.mean(2), atol=1e-6)


def test_masked_ssim_is_one_for_identical_and_lower_for_damaged_region():
    frame = PuppetVideo(video_spec("test", 0, num_frames=1)).frame(0)
    assert masked_ssim(frame.image, frame.image, frame.mask) == pytest.approx(1.0)
    blurred = frame.image.copy()
    blurred[frame.mask] = 128
    assert masked_ssim(blurred, frame.image, frame.mask) < 0.7
    # Damage only outside the person: the masked score does not move.
    outside = frame.image.copy()
    outside[~frame.mask] = 0
    from scipy.ndimage import binary_erosion

    inner = binary_erosion(frame.mask, structure=np.ones((3, 3)), iterations=6)  # beyond the 11x11 window
    assert masked_ssim(outside, frame.image, inner) == pytest.approx(1.0)


def test_person_mask_from_known_background_recovers_the_rendered_mask():
    for index in range(3):
        video = PuppetVideo(video_spec("test", index, num_frames=1))
        frame = video.frame(0)
        found = person_mask_from_background(frame.image, video.background)
        assert mask_iou(found, frame.mask) > 0.9
        assert not person_mask_from_background(np.asarray(video.background), video.background).any()


def test_mask_iou_values():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True
    b[1:3] = True
    assert mask_iou(a, b) == pytest.approx(4 / 12)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 1.0


def test_identity_colour_error_sees_only_the_changed_region():
    frame = PuppetVideo(video_spec("test", 1, num_frames=1, framing="upper")).frame(0)
    same = identity_colour_error(frame.image, frame.image, frame.parts)
    assert set(same) >= {"skin", "top"} and all(v == pytest.approx(0, abs=1e-4) for v in same.values())
    recoloured = frame.image.copy()
    recoloured[frame.parts == Part.TOP] = (0, 255, 0)
    errors = identity_colour_error(recoloured, frame.image, frame.parts)
    assert errors["top"] > 20
    assert errors["skin"] == pytest.approx(0, abs=1e-4)


def test_identity_colour_error_in_lab_units():
    parts = np.full((8, 8), int(Part.SKIN), np.uint8)
    white = np.full((8, 8, 3), 255, np.uint8)
    black = np.zeros((8, 8, 3), np.uint8)
    assert identity_colour_error(black, white, parts, erode=0)["skin"] == pytest.approx(100, abs=0.1)  # L* 0 vs 100


def test_frame_scores_rank_a_wrong_pose_below_the_right_one():
    from magicpose.evaluation.puppet_metrics import puppet_frame_scores

    video = PuppetVideo(video_spec("test", 4, num_frames=30))
    truth, other = video.frame(0), video.frame(20)
    perfect = puppet_frame_scores(truth.image, truth.image, truth.mask, truth.parts, video.background)
    assert perfect["masked_psnr"] == math.inf and perfect["mask_iou"] > 0.9 and perfect["colour_skin"] == 0
    wrong = puppet_frame_scores(other.image, truth.image, truth.mask, truth.parts, video.background)
    assert wrong["mask_iou"] < perfect["mask_iou"] and wrong["masked_ssim"] < perfect["masked_ssim"]
