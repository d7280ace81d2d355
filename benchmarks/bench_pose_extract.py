"""Pose extraction speed at 512 x 512: mediapipe Holistic alone against our full path.

    python benchmarks/bench_pose_extract.py [--frames 60] [--image PATH]

The test clip is a real photo (scikit-image's astronaut, from ../shared/reference/real_media or the
installed scikit-image) sliding sideways, encoded as H.264 so the full path includes decoding.
Rows:
  mediapipe Holistic (video mode)      `Holistic.process` on decoded frames, nothing else
  mediapipe Holistic (image mode)      the same, detecting every frame afresh (static_image_mode)
  PoseDetector.detect_video(mp4)       decode + Holistic + OpenPose mapping + gap filling
  + render skeleton preview (mp4)      the above plus drawing and H.264-encoding the preview
  decode mp4 (PyAV)                    our additions, measured alone ...
  landmarks -> OpenPose mapping
  draw_openpose
Cases run round-robin --repeats times; best and median are reported (shared machines are noisy).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from magicpose.media import read_image, read_video, write_video  # noqa: E402
from magicpose.poses.detect import PoseDetector, _holistic  # noqa: E402
from magicpose.poses.mediapipe_mapping import HolisticLandmarks, holistic_to_pose  # noqa: E402
from magicpose.poses.render import draw_openpose, render_sequence  # noqa: E402


def find_photo(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    shared = REPO / ".." / "shared" / "reference" / "real_media" / "astronaut.png"
    if shared.exists():
        return shared
    import skimage

    return Path(skimage.__file__).parent / "data" / "astronaut.png"


def make_clip(photo: np.ndarray, count: int, path: Path) -> None:
    import cv2

    image = cv2.resize(photo, (512, 512), interpolation=cv2.INTER_AREA)
    frames = []
    for index in range(count):
        shift = int(40 * np.sin(2 * np.pi * index / 30))  # sway left and right
        frames.append(np.roll(image, shift, axis=1))
    write_video(path, frames, fps=30)


def interleaved(cases, repeats: int) -> dict[str, list[float]]:
    """Wall times of every case, run round-robin so that load from other processes hits all alike."""
    times = {label: [] for label, _ in cases}
    for _ in range(repeats):
        for label, function in cases:
            start = time.perf_counter()
            function()
            times[label].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--image", help="photo to build the clip from (default: the astronaut)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.mp4"
        make_clip(read_image(find_photo(args.image)), args.frames, clip)
        frames, _ = read_video(clip)
        n = len(frames)

        # Warm up: the first call loads the models (and the mediapipe import) once.
        with _holistic(False, True, True, 0.5, 0.5) as model:
            model.process(frames[0])

        results = {}

        def holistic_only(static: bool):
            with _holistic(static, True, True, 0.5, 0.5) as model:  # fresh tracker, as detect_video
                results[static] = [model.process(frame) for frame in frames]

        detector = PoseDetector()
        holder = {}

        def detect():
            holder["sequence"] = detector.detect_video(clip, progress=False)

        def detect_and_preview():
            result = detector.detect_video(clip, progress=False)
            write_video(Path(folder) / "preview.mp4", render_sequence(result.frames, 512, 512), result.fps)

        def mapping():
            for result in results[False]:
                holistic_to_pose(HolisticLandmarks.from_results(result, 512, 512), 512, 512)

        cases = [
            ("mediapipe Holistic (video mode)", lambda: holistic_only(False)),
            ("mediapipe Holistic (image mode)", lambda: holistic_only(True)),
            ("PoseDetector.detect_video(mp4)", detect),
            ("  + render skeleton preview (mp4)", detect_and_preview),
            ("decode mp4 (PyAV)", lambda: read_video(clip)),
            ("landmarks -> OpenPose mapping", mapping),
            ("draw_openpose", lambda: [draw_openpose(p, 512, 512) for p in holder["sequence"].frames]),
        ]
        times = interleaved(cases, args.repeats)
        sequence = holder["sequence"]

    print(
        f"pose extraction at 512x512, {n} frames, {os.cpu_count()} CPU cores, "
        f"refine_face_landmarks=True, {args.repeats} rounds"
    )
    print(f"{'path':<36} {'ms/frame best':>14} {'median':>8} {'frames/s best':>14}")
    for label, runs in times.items():
        best, median = min(runs), float(np.median(runs))
        print(f"{label:<36} {1000 * best / n:>14.1f} {1000 * median / n:>8.1f} {n / best:>14.1f}")
    print(f"frames with a person: {int(sequence.found.sum())}/{n}")


if __name__ == "__main__":
    main()
