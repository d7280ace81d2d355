"""Pose detection from images and videos with mediapipe Holistic, in the OpenPose layout.

Holistic (mediapipe 0.10.21 `solutions` API) ships its models inside the wheel; only
`model_complexity=1` runs offline (0 and 2 try to download their pose model), so it is fixed here.
Holistic follows one person. Videos run in tracking mode (`static_image_mode=False`), which is both
steadier and about 4x faster than detecting every frame afresh.
mediapipe is imported on first use: importing it costs about a second.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from magicpose.errors import InputError
from magicpose.poses.fill import DEFAULT_MAX_INTERPOLATION_GAP, fill_missing
from magicpose.poses.mediapipe_mapping import HolisticLandmarks, holistic_to_pose
from magicpose.poses.types import Pose, PoseSequence

MODEL_COMPLEXITY = 1  # the only offline-capable setting, see the module docstring


def _holistic(
    static_image_mode: bool,
    refine_face: bool,
    smooth: bool,
    min_detection_confidence: float,
    min_tracking_confidence: float,
):
    os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ start-up chatter
    import mediapipe as mp

    return mp.solutions.holistic.Holistic(
        static_image_mode=static_image_mode,
        model_complexity=MODEL_COMPLEXITY,
        refine_face_landmarks=refine_face,
        smooth_landmarks=smooth,
        min_detection_confidence=min_detection_confidence,
        min_tracking_confidence=min_tracking_confidence,
    )


def _check_frame(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputError(f"expected an (H, W, 3) uint8 RGB image, got shape {rgb.shape} and dtype {rgb.dtype}")
    return np.ascontiguousarray(rgb)


class PoseDetector:
    """mediapipe Holistic mapped to OpenPose keypoints (body 18, hands 21 + 21, face 70).

    Args:
        min_visibility: BlazePose visibility below which a body joint counts as missing.
        refine_face: run the iris model so the two pupils are real iris centres.
        smooth: Holistic's temporal landmark filter in videos; steadier skeletons, but fast motion
            lags by a frame or two.
        min_detection_confidence, min_tracking_confidence: Holistic's own thresholds.
        max_interpolation_gap: longest run of empty frames (in frames) filled by interpolation;
            longer runs hold the nearest detection.
    """

    def __init__(
        self,
        *,
        min_visibility: float = 0.3,
        refine_face: bool = True,
        smooth: bool = True,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        max_interpolation_gap: int = DEFAULT_MAX_INTERPOLATION_GAP,
    ):
        self.min_visibility = min_visibility
        self.refine_face = refine_face
        self.smooth = smooth
        self.min_detection_confidence = min_detection_confidence
        self.min_tracking_confidence = min_tracking_confidence
        self.max_interpolation_gap = max_interpolation_gap
        self._image_model = None

    def _new_model(self, static_image_mode: bool):
        return _holistic(
            static_image_mode,
            self.refine_face,
            self.smooth,
            self.min_detection_confidence,
            self.min_tracking_confidence,
        )

    def _pose(self, model, rgb: np.ndarray) -> Pose | None:
        height, width = rgb.shape[:2]
        landmarks = HolisticLandmarks.from_results(model.process(rgb), width, height)
        return holistic_to_pose(landmarks, width, height, self.min_visibility)

    def detect_image(self, rgb: np.ndarray) -> Pose | None:
        """The pose of the (main) person in one RGB uint8 image, or None if nobody is found."""
        rgb = _check_frame(rgb)
        if self._image_model is None:
            self._image_model = self._new_model(static_image_mode=True)
        return self._pose(self._image_model, rgb)

    def detect_frames(
        self, frames: Iterable[np.ndarray], *, progress: bool = False, total: int | None = None
    ) -> list[Pose | None]:
        """Per-frame poses of one video in tracking mode; None where nobody was found."""
        poses = []
        with self._new_model(static_image_mode=False) as model:  # fresh tracker per video
            for rgb in tqdm(frames, total=total, desc="poses", unit="frame", disable=not progress):
                poses.append(self._pose(model, _check_frame(rgb)))
        return poses

    def detect_video(
        self,
        source: str | os.PathLike | Sequence[np.ndarray],
        progress: bool = True,
        *,
        fps: float | None = None,
        max_frames: int | None = None,
    ) -> PoseSequence:
        """Poses of every frame (or the first `max_frames`) of a video file, an image folder or a list
        of RGB frames; the rest of the video is not decoded.

        Frames where nobody is found are marked in `found` and filled (interpolated across short
        gaps, held across long ones). The source frame rate is kept; for a list of frames pass
        `fps` (default 30). A video with nobody in any frame is an InputError.
        """
        from magicpose.media import VideoReader

        if isinstance(source, (str, os.PathLike)):
            with VideoReader(source) as reader:
                size, rate = (reader.width, reader.height), reader.fps
                total = (
                    reader.frame_count
                    if max_frames is None or reader.frame_count is None
                    else min(reader.frame_count, max_frames)
                )
                poses = self.detect_frames(itertools.islice(reader, max_frames), progress=progress, total=total)
            name = str(source)
        else:
            frames = list(itertools.islice(source, max_frames))
            if not frames:
                raise InputError("no frames to detect poses in")
            size, rate, name = (frames[0].shape[1], frames[0].shape[0]), fps or 30.0, "the video"
            poses = self.detect_frames(frames, progress=progress, total=len(frames))
        if not poses:
            raise InputError(f"{name} contains no frames; pass a video with at least one frame")
        if all(pose is None for pose in poses):
            raise InputError(
                f"no person found in any of the {len(poses)} frames of {name}; pass a video showing a person"
            )
        filled, found = fill_missing(poses, self.max_interpolation_gap)
        # Decoded frames may be rotated upright from the container's size; trust the pixels.
        return PoseSequence(filled, size[0], size[1], float(fps or rate), found)

    def close(self) -> None:
        if self._image_model is not None:
            self._image_model.close()
            self._image_model = None

    def __enter__(self) -> PoseDetector:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
