"""Steady skeletons: offline, zero-lag smoothing of keypoints over time.

Detectors jitter by a few pixels from frame to frame and now and then throw a point far off; the
pose ControlNet turns both into flicker. A video is smoothed whole (offline), so the smoother can
look both ways and adds no lag. Each keypoint, along each of its runs of consecutive detections:

1. **Outliers** (a Hampel filter; Pearson et al., "Generalized Hampel filters", 2016): a point further
   than `k * 1.4826 * MAD` (and than a floor) from the median of its 5-frame window is replaced by
   that median; MAD is the median residual of the point's own run.
2. **Kalman filter forward, Rauch-Tung-Striebel smoother backward** (Rauch, Tung and Striebel, AIAA J.
   1965) with a constant-velocity model per coordinate, state s = (position, velocity), step Te = 1 / fps:

       predict   s- = F s,   P- = F P F' + a Q,   F = [[1, Te], [0, 1]],   Q = q [[Te^3/3, Te^2/2], [Te^2/2, Te]]
       update    S = P-_00 + r,   K = P-_:0 / S,   s = s- + K (z - s-_0),   P = P- - K P-_0:
       smooth    C_t = P_t F' (P-_{t+1})^-1,   s^_t = s_t + C_t (s^_{t+1} - s-_{t+1})

   The smoothed estimate uses every detection before and after a frame, so it has no lag. `r`, the
   detector's noise variance, is measured on the video itself (robustly, from second differences
   pooled over a part: var(z_t+1 - 2 z_t + z_t-1) = 6 r for white noise); `q`, how fast people are
   believed to move, is set per part and level. **Fast real motion**: where the innovation of a point
   is improbable under the model (chi-square of 2 dof above `GATE`), its process noise is inflated for
   that step by the ratio (adjustable process noise, Bar-Shalom, Li and Kirubarajan, "Estimation with
   Applications to Tracking and Navigation", 2001, sec. 11.2), so a sudden move is followed within a
   frame or two instead of being dragged. Positions are in person heights (the sequence's median body
   height), so the levels mean the same at any resolution.

A frame where a point is missing, or where nobody was detected (`found` false), ends that point's run:
nothing is smoothed across it. Frames without a detection are filled again afterwards
(`fill_missing`) from the smoothed neighbours. Body, hands and face have their own strengths (hands
move fastest, faces carry quick expressions). Measured on puppets with detector-like noise and on
real video in docs/poses.md ("Steady skeletons").
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from magicpose.errors import InputError
from magicpose.poses.fill import DEFAULT_MAX_INTERPOLATION_GAP, fill_missing
from magicpose.poses.types import NUM_BODY, NUM_FACE, NUM_HAND, Pose, PoseSequence

SMOOTHING_LEVELS = ("off", "low", "medium", "high")
DEFAULT_SMOOTHING = "medium"

# Rows of the stacked (K, 3) array of one pose: body 18, left hand 21, right hand 21, face 70.
_SLICES = {
    "body": slice(0, NUM_BODY),
    "left_hand": slice(NUM_BODY, NUM_BODY + NUM_HAND),
    "right_hand": slice(NUM_BODY + NUM_HAND, NUM_BODY + 2 * NUM_HAND),
    "face": slice(NUM_BODY + 2 * NUM_HAND, NUM_BODY + 2 * NUM_HAND + NUM_FACE),
}
_GROUP = {"body": "body", "left_hand": "hands", "right_hand": "hands", "face": "face"}
GROUPS = ("body", "hands", "face")

# q, the process noise (person heights^2 / s^3), per part at "medium": the lowest error against the
# true keypoints on the puppet benchmark at 1 % jitter (benchmarks/bench_smoothing.py).
PROCESS_NOISE = {"body": 1.0, "hands": 3.0, "face": 0.5}
# Each level scales q: larger q trusts the detections more (less smoothing).
LEVEL_SCALE = {"low": 10.0, "medium": 1.0, "high": 0.1}
GATE = 9.21  # chi-square, 2 dof, 99 %: innovations beyond it are taken as real motion
OUTLIER_K = 4.0  # residuals beyond k robust sigmas from the 5-frame median are outliers ...
OUTLIER_FLOOR = 0.03  # ... and beyond this many person heights (so sub-pixel noise never triggers it)
_VELOCITY_PRIOR = 1.0  # variance of a run's unknown starting velocity, (person heights / s)^2
_MIN_NOISE = 1e-8  # floor on r (person heights^2): noise-free input stays well-posed


def check_level(level: str) -> str:
    if level not in SMOOTHING_LEVELS:
        raise InputError(f"unknown smoothing level {level!r}; choose one of {', '.join(SMOOTHING_LEVELS)}")
    return level


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of the runs of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def _reject_outliers(xy: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Hampel filter per point run, on 2-D distances; a point is an outlier only if it is also far from
    the quadratic through its four neighbours, so the tip of a fast real swing (which lies on that
    curve but off the window's median) is kept."""
    out = xy.copy()
    for k in range(xy.shape[1]):
        for start, stop in _runs(present[:, k]):
            if stop - start < 5:
                continue
            run = xy[start:stop, k]
            padded = np.concatenate([run[:1].repeat(2, 0), run, run[-1:].repeat(2, 0)])
            median = np.median(np.lib.stride_tricks.sliding_window_view(padded, 5, axis=0), axis=2)
            residual = np.linalg.norm(run - median, axis=1)
            curve = (4 * (padded[1:-3] + padded[3:-1]) - (padded[:-4] + padded[4:])) / 6  # LSQ quadratic at s=0
            off_curve = np.linalg.norm(run - curve, axis=1)
            limit = max(OUTLIER_K * 1.4826 * np.median(residual), OUTLIER_FLOOR)
            bad = (residual > limit) & (off_curve > limit)
            out[start:stop, k][bad] = median[bad]
    return out


def _group_rows(group: str) -> np.ndarray:
    return np.concatenate([np.arange(_SLICES[n].start, _SLICES[n].stop) for n in Pose.PARTS if _GROUP[n] == group])


def detector_noise_variance(xy: np.ndarray, present: np.ndarray) -> np.ndarray:
    """r per point (K,): per part group, (1.4826 MAD of second differences)^2 / 6 over its runs."""
    r = np.full(xy.shape[1], _MIN_NOISE)
    triple = present[:-2] & present[1:-1] & present[2:]
    second = xy[2:] - 2 * xy[1:-1] + xy[:-2]
    for group in GROUPS:
        rows = _group_rows(group)
        values = np.abs(second[:, rows][triple[:, rows]])
        if values.size:
            r[rows] = max((1.4826 * float(np.median(values))) ** 2 / 6.0, _MIN_NOISE)
    return r


def _rts(xy: np.ndarray, present: np.ndarray, period: float, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Constant-velocity Kalman + RTS smoother of (T, K, 2) points along the runs of `present` (T, K).

    x and y share one covariance per point (same model, same missing frames), so P is (K, 2, 2) and the
    state (K, 2 coordinates, [position, velocity]).
    """
    count, points = present.shape
    F = np.array([[1.0, period], [0.0, 1.0]])
    Q = np.array([[period**3 / 3, period**2 / 2], [period**2 / 2, period]])
    predicted, predicted_cov = np.zeros((count, points, 2, 2)), np.zeros((count, points, 2, 2))
    filtered, filtered_cov = np.zeros((count, points, 2, 2)), np.zeros((count, points, 2, 2))
    state, cov = np.zeros((points, 2, 2)), np.zeros((points, 2, 2))
    live = np.zeros(points, dtype=bool)
    for t in range(count):
        here = present[t]
        start, step = here & ~live, here & live
        state[start, :, 0], state[start, :, 1] = xy[t, start], 0.0
        cov[start] = np.diag([0.0, _VELOCITY_PRIOR])
        cov[start, 0, 0] = r[start]
        if step.any():
            guess = state[step] @ F.T
            spread = F @ cov[step] @ F.T
            innovation = xy[t, step] - guess[:, :, 0]
            inflate = np.ones(int(step.sum()))
            for _ in range(2):  # the gate's test uses the inflated prediction of the first round
                prior = spread + (q[step] * inflate)[:, None, None] * Q
                surprise = (innovation**2).sum(axis=1) / (prior[:, 0, 0] + r[step])
                inflate = inflate * np.maximum(1.0, surprise / GATE)
            gain = prior[:, :, 0] / (prior[:, 0, 0] + r[step])[:, None]
            predicted[t, step], predicted_cov[t, step] = guess, prior
            state[step] = guess + innovation[:, :, None] * gain[:, None, :]
            cov[step] = prior - gain[:, :, None] * prior[:, 0, None, :]
        filtered[t], filtered_cov[t] = state, cov
        live = here
    out = filtered[:, :, :, 0].copy()
    smoothed = filtered[-1].copy()
    for t in range(count - 2, -1, -1):
        following, smoothed = smoothed, filtered[t].copy()
        link = present[t] & present[t + 1]
        if link.any():
            a = predicted_cov[t + 1, link]
            inverse = np.stack([np.stack([a[:, 1, 1], -a[:, 0, 1]], -1), np.stack([-a[:, 1, 0], a[:, 0, 0]], -1)], -2)
            inverse /= (a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0])[:, None, None]
            gain = filtered_cov[t, link] @ F.T @ inverse
            smoothed[link] += (following[link] - predicted[t + 1, link]) @ np.swapaxes(gain, 1, 2)
        out[t] = smoothed[:, :, 0]
    return out


def person_height(sequence: PoseSequence) -> float:
    """Median height of the body keypoints' box over the detected frames (pixels), the unit of motion."""
    heights = []
    for pose, found in zip(sequence.frames, sequence.found):
        body = pose.body[pose.body[:, 2] > 0, :2]
        if found and len(body) >= 2:
            heights.append(float(np.ptp(body[:, 1])))
    height = float(np.median(heights)) if heights else 0.0
    return height if height > 1.0 else 0.5 * float(sequence.height)


def _stack(sequence: PoseSequence) -> np.ndarray:
    return np.stack([np.concatenate([pose.part(name) for name in Pose.PARTS]) for pose in sequence.frames])


def smooth_poses(
    sequence: PoseSequence, level: str = DEFAULT_SMOOTHING, *, max_gap: int = DEFAULT_MAX_INTERPOLATION_GAP
) -> PoseSequence:
    """A smoothed copy of `sequence` (see the module docstring); "off" returns an unchanged copy.

    Only detected points move; confidences, `found` and the followed person are kept. Frames where
    nobody was detected are filled again from the smoothed detections (`max_gap` as in `fill_missing`).
    """
    check_level(level)
    frames = [pose.copy() for pose in sequence.frames]
    out = replace(sequence, frames=frames, found=sequence.found.copy())
    if level == "off" or len(sequence) < 2:
        return out
    points = _stack(sequence)
    present = (points[:, :, 2] > 0) & sequence.found[:, None]
    if not present.any():
        return out
    unit = person_height(sequence)
    xy = _reject_outliers(points[:, :, :2] / unit, present)
    q = np.zeros(points.shape[1])
    for group in GROUPS:
        q[_group_rows(group)] = PROCESS_NOISE[group] * LEVEL_SCALE[level]
    smoothed = _rts(xy, present, 1.0 / float(sequence.fps), q, detector_noise_variance(xy, present)) * unit
    for t, pose in enumerate(frames):
        for name in Pose.PARTS:
            rows, part = _SLICES[name], pose.part(name)
            keep = present[t, rows]
            part[keep, :2] = smoothed[t, rows][keep]
    if not sequence.found.all():
        out.frames, _ = fill_missing([pose if found else None for pose, found in zip(frames, sequence.found)], max_gap)
    return out


# How much each part jitters relative to the body, in the noise model below (mediapipe's face mesh
# is steadier than its body joints; its hands are the least steady).
NOISE_SCALE = {"body": 1.0, "hands": 1.5, "face": 0.4}


def detector_noise(
    sequence: PoseSequence,
    rng: np.random.Generator,
    *,
    jitter: float = 0.01,
    outliers: float = 0.01,
    dropouts: float = 0.01,
    frame_dropouts: float = 0.01,
) -> PoseSequence:
    """True poses as a detector would report them, for measuring smoothing where the truth is known.

    Gaussian jitter of `jitter` person heights (scaled per part by NOISE_SCALE); each point is thrown
    0.1 person heights off with probability `outliers`; point dropouts start with probability
    `dropouts` and last 1-5 frames; whole frames are lost (found false, then filled as the detector
    fills them) in runs of 1-3 starting with probability `frame_dropouts`.
    """
    unit = person_height(sequence)
    points = _stack(sequence)
    count, size = points.shape[:2]
    sigma = np.array(
        [NOISE_SCALE[_GROUP[name]] for name in Pose.PARTS for _ in range(_SLICES[name].stop - _SLICES[name].start)]
    )
    noisy = points.copy()
    noisy[:, :, :2] += rng.normal(0.0, 1.0, (count, size, 2)) * (jitter * unit * sigma)[None, :, None]
    thrown = rng.random((count, size)) < outliers
    angle = rng.uniform(0, 2 * np.pi, thrown.sum())
    noisy[thrown, :2] += 0.1 * unit * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    lost = np.zeros((count, size), dtype=bool)
    for t, k in zip(*np.nonzero(rng.random((count, size)) < dropouts)):
        lost[t : t + int(rng.integers(1, 6)), k] = True
    noisy[lost, 2] = 0.0
    found = sequence.found.copy()
    for t in np.flatnonzero(rng.random(count) < frame_dropouts):
        found[t : t + int(rng.integers(1, 4))] = False
    found[int(rng.integers(count))] = True  # never a video without any detection
    poses: list[Pose | None] = []
    for t in range(count):
        if not found[t]:
            poses.append(None)
            continue
        parts = {name: noisy[t, _SLICES[name]] for name in Pose.PARTS}
        poses.append(Pose(**parts))
    filled, found = fill_missing(poses)
    return PoseSequence(filled, sequence.width, sequence.height, sequence.fps, found)
