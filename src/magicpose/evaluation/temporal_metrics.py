"""Temporal consistency of a generated video against its ground truth, frame pair by frame pair.

Per-frame metrics cannot see flicker: a video whose frames are each good but jitter from one to the
next scores as well as a steady one. These two measure the change between consecutive frames, which
is what a motion module (paper appendix C) is meant to improve. Both take (H, W, 3) uint8 RGB frames
(or float in [0, 1]), are pure, and report 8-bit levels (0-255), lower is better.
"""

from __future__ import annotations

import numpy as np


def _levels(image: np.ndarray) -> np.ndarray:
    """An image in 8-bit levels as float64 (floats in [0, 1] are scaled by 255)."""
    array = np.asarray(image)
    return array.astype(np.float64) if array.dtype == np.uint8 else array.astype(np.float64) * 255.0


def frame_difference_error(generated_previous, generated, truth_previous, truth) -> float:
    """How far the generated change between two frames is from the true change:
    mean |(g_t - g_{t-1}) - (y_t - y_{t-1})| over pixels and channels.

    After TecoGAN's tOF and tLP (Chu et al. 2020), which compare the generated with the true change
    between frames, here in pixels without a flow or perceptual network: 0 when the video changes
    exactly as the ground truth does, whatever each frame's own error; flicker and missed motion
    both raise it.
    """
    generated_change = _levels(generated) - _levels(generated_previous)
    true_change = _levels(truth) - _levels(truth_previous)
    if generated_change.shape != true_change.shape:
        raise ValueError(f"generated frames {generated_change.shape} do not match ground truth {true_change.shape}")
    return float(np.abs(generated_change - true_change).mean())


def static_flicker(generated_previous, generated, static: np.ndarray) -> float:
    """Mean absolute change between two consecutive generated frames over the pixels of `static`, where
    the ground truth does not change (a fixed camera's background): any change there is flicker.
    nan for an empty region."""
    region = np.asarray(static, dtype=bool)
    change = np.abs(_levels(generated) - _levels(generated_previous)).mean(axis=2)
    if change.shape != region.shape:
        raise ValueError(f"static region {region.shape} does not match frames {change.shape}")
    return float(change[region].mean()) if region.any() else float("nan")
