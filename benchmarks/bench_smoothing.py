"""Steady skeletons, measured: keypoint error against the truth and jitter, before and after smoothing.

    python benchmarks/bench_smoothing.py [--videos 6] [--frames 90] [--real VIDEO ...] [--no-detector]

1. Puppet motions (the true keypoints of test-split dances, 256 x 256 at 30 fps) with detector-like
   noise from `magicpose.poses.smoothing.detector_noise` at three jitter levels (1 % outliers, 1 %
   point dropouts of 1-5 frames, 1 % lost frames): mean error to the truth (px) and jitter (mean
   |acceleration|, px / frame^2) per part, for every level. The truth's own acceleration is the floor.
2. The real detector on rendered puppets: mediapipe Holistic with its own (causal) landmark filter, and
   without it followed by ours. Error here includes Holistic's fixed offsets from the puppet's joints.
3. Real videos (files given with --real, e.g. Debian opencv-doc's Megamind.avi or vtest.avi): jitter
   before and after, on the frames and points that were detected.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from magicpose.data.puppet.world import PuppetVideo, video_spec  # noqa: E402
from magicpose.poses.smoothing import (  # noqa: E402
    GROUPS,
    SMOOTHING_LEVELS,
    _group_rows,
    _stack,
    detector_noise,
    smooth_poses,
)

ROWS = {group: _group_rows(group) for group in GROUPS}


def acceleration(points: np.ndarray, present: np.ndarray, average=np.mean) -> float:
    """Mean |x_t+1 - 2 x_t + x_t-1| over the triples where the point is present in all three frames."""
    triple = present[:-2] & present[1:-1] & present[2:]
    second = np.linalg.norm(points[2:] - 2 * points[1:-1] + points[:-2], axis=-1)
    return float(average(second[triple])) if triple.any() else float("nan")


def scores(estimate, reference, truth) -> dict[str, tuple[float, float, float]]:
    """Per part group: (error to truth, jitter of estimate, jitter of truth), on the points `reference` detected."""
    e, r, t = _stack(estimate), _stack(reference), _stack(truth)
    present = (r[:, :, 2] > 0) & reference.found[:, None] & (t[:, :, 2] > 0)
    out = {}
    for group, rows in ROWS.items():
        p = present[:, rows]
        error = np.linalg.norm(e[:, rows, :2] - t[:, rows, :2], axis=2)[p].mean()
        out[group] = (float(error), acceleration(e[:, rows, :2], p), acceleration(t[:, rows, :2], p))
    return out


def table(title: str, rows: list[tuple[str, dict]]) -> None:
    print(f"\n{title}")
    header = "| | " + " | ".join(f"{g} error | {g} jitter" for g in GROUPS) + " |"
    print(header)
    print("|" + "---|" * (1 + 2 * len(GROUPS)))
    for name, values in rows:
        cells = " | ".join(f"{values[g][0]:.2f} | {values[g][1]:.2f}" for g in GROUPS)
        print(f"| {name} | {cells} |")
    truth = rows[0][1]
    print("| truth | " + " | ".join(f"0 | {truth[g][2]:.2f}" for g in GROUPS) + " |")


def mean_scores(items: list[dict]) -> dict:
    return {g: tuple(float(np.nanmean([item[g][k] for item in items])) for k in range(3)) for g in GROUPS}


def puppets(count: int, frames: int, framing: str = "full") -> list[PuppetVideo]:
    return [
        PuppetVideo(video_spec("test", 100 + i, framing=framing, width=256, height=256, fps=30.0, num_frames=frames))
        for i in range(count)
    ]


def synthetic(videos: list[PuppetVideo]) -> None:
    truths = [video.poses() for video in videos]
    for jitter in (0.005, 0.01, 0.02):
        rng = np.random.default_rng(0)
        noisy = [detector_noise(truth, rng, jitter=jitter) for truth in truths]
        rows = []
        for level in SMOOTHING_LEVELS:
            start = time.perf_counter()
            smoothed = [smooth_poses(n, level) for n in noisy]
            seconds = (time.perf_counter() - start) / len(noisy)
            rows.append((level, mean_scores([scores(s, n, t) for s, n, t in zip(smoothed, noisy, truths)])))
            if level == "medium":
                per_video = seconds
        table(f"puppets + detector noise, jitter {jitter:.1%} of the person's height (px)", rows)
        print(f"(medium: {1000 * per_video:.0f} ms per {len(truths[0])}-frame video)")


def with_detector(videos: list[PuppetVideo]) -> None:
    from magicpose.poses.detect import PoseDetector

    truths, internal, bare = [], [], []
    for video in videos:
        frames = [video.frame(i).image for i in range(len(video))]
        truths.append(video.poses())
        for smooth, out in ((True, internal), (False, bare)):
            with PoseDetector(smooth=smooth) as detector:
                out.append(detector.detect_video(frames, progress=False, fps=video.spec.fps))
    rows = [("Holistic + its own filter (today)", mean_scores([scores(i, i, t) for i, t in zip(internal, truths)]))]
    for level in SMOOTHING_LEVELS:
        smoothed = [smooth_poses(b, level) for b in bare]
        rows.append(
            (
                f"Holistic unfiltered, ours {level}",
                mean_scores([scores(s, b, t) for s, b, t in zip(smoothed, bare, truths)]),
            )
        )
    for level in ("medium",):
        smoothed = [smooth_poses(i, level) for i in internal]
        rows.append(
            (
                f"Holistic + its filter, ours {level}",
                mean_scores([scores(s, i, t) for s, i, t in zip(smoothed, internal, truths)]),
            )
        )
    table(f"mediapipe Holistic on {len(videos)} rendered puppets (px)", rows)


def moving_photo(path: str, frames: int = 90) -> None:
    """A real photo filmed by a drifting camera (smooth shift and zoom, 30 fps): the true motion of every
    keypoint is that of the camera, applied to the photo's pose (the median of the detections mapped back)."""
    import cv2

    from magicpose.media import read_image
    from magicpose.poses.detect import PoseDetector
    from magicpose.poses.types import PoseSequence

    photo = read_image(path)
    height, width = photo.shape[:2]
    t = np.arange(frames) / 30.0
    scale = 1.0 + 0.05 * np.sin(2 * np.pi * 0.3 * t)
    shift = np.stack([25 * np.sin(2 * np.pi * 0.4 * t), 15 * np.sin(2 * np.pi * 0.25 * t + 1)], axis=1)
    centre = np.array([width, height]) / 2
    offsets = centre * (1 - scale[:, None]) + shift  # x' = s x + o, zooming about the centre
    video = [
        cv2.warpAffine(photo, np.array([[s, 0, o[0]], [0, s, o[1]]]), (width, height), borderMode=cv2.BORDER_REFLECT)
        for s, o in zip(scale, offsets)
    ]
    out = {}
    for smooth in (True, False):
        with PoseDetector(smooth=smooth) as detector:
            out[smooth] = detector.detect_video(video, progress=False, fps=30.0)
    bare = out[False]
    points = _stack(bare)
    canonical = np.median((points[:, :, :2] - offsets[:, None]) / scale[:, None, None], axis=0)
    truth_xy = canonical[None] * scale[:, None, None] + offsets[:, None]
    truth = PoseSequence([pose.copy() for pose in bare.frames], width, height, 30.0, bare.found.copy())
    for k, pose in enumerate(truth.frames):
        for name, rows in zip(
            ("body", "left_hand", "right_hand", "face"), (range(0, 18), range(18, 39), range(39, 60), range(60, 130))
        ):
            pose.part(name)[:, :2] = truth_xy[k, list(rows)]
    rows = [("Holistic + its own filter (today)", scores(out[True], out[True], truth))]
    rows += [
        (f"Holistic unfiltered, ours {level}", scores(smooth_poses(bare, level), bare, truth))
        for level in SMOOTHING_LEVELS
    ]
    table(f"{Path(path).name} filmed by a drifting camera, {frames} frames (px; truth: the camera's motion)", rows)


def real(path: str, max_frames: int | None) -> None:
    from magicpose.poses.detect import PoseDetector

    with PoseDetector(smooth=False) as detector:
        bare = detector.detect_video(path, progress=False, max_frames=max_frames)
    with PoseDetector(smooth=True) as detector:
        internal = detector.detect_video(path, progress=False, max_frames=max_frames)
    print(f"\n{Path(path).name}: {len(bare)} frames, person on {int(bare.found.sum())} (mode {bare.person['mode']})")
    print("| | " + " | ".join(f"{g} jitter (median)" for g in GROUPS) + " |")
    print("|" + "---|" * (1 + len(GROUPS)))
    for name, sequence, reference in [("Holistic + its own filter (today)", internal, internal)] + [
        (f"Holistic unfiltered, ours {level}", smooth_poses(bare, level), bare) for level in SMOOTHING_LEVELS
    ]:
        points, detected = _stack(sequence), _stack(reference)
        present = (detected[:, :, 2] > 0) & reference.found[:, None]
        cells = [acceleration(points[:, rows, :2], present[:, rows]) for rows in ROWS.values()]
        medians = [acceleration(points[:, rows, :2], present[:, rows], np.median) for rows in ROWS.values()]
        print(f"| {name} | " + " | ".join(f"{c:.2f} ({m:.2f})" for c, m in zip(cells, medians)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--detector-videos", type=int, default=3)
    parser.add_argument("--no-detector", action="store_true", help="skip the parts that run mediapipe")
    parser.add_argument("--real", nargs="*", default=[], help="real videos to measure jitter on")
    parser.add_argument("--real-frames", type=int, default=300)
    args = parser.parse_args()
    synthetic(puppets(args.videos, args.frames))
    if not args.no_detector:
        with_detector(puppets(args.detector_videos, args.frames))
        photo = REPO.parent / "shared" / "reference" / "real_media" / "astronaut.png"
        if photo.exists():
            moving_photo(str(photo), args.frames)
        for path in args.real:
            real(path, args.real_frames)


if __name__ == "__main__":
    main()
