"""Pose detection from images and videos with mediapipe Holistic, in the OpenPose layout.

Holistic (mediapipe 0.10.21 `solutions` API) ships its models inside the wheel; only
`model_complexity=1` runs offline (0 and 2 try to download their pose model), so it is fixed here.
Holistic follows one person. Videos run in tracking mode (`static_image_mode=False`), which is both
steadier and about 4x faster than detecting every frame afresh.
mediapipe is imported on first use: importing it costs about a second.

Several people (`detect_video(..., person=...)`): a survey first looks for people every
`SURVEY_STRIDE` frames. With at most one person on every look the video takes the one-person path
above, unchanged. Otherwise every frame's people are found (`tracking.PoseFinder`, or
`tracking.PedestrianFinder` where people are too small for the pose model), linked into tracks
(`tracking.PeopleTracker`), the chosen person is picked on the first frame with anyone, and Holistic
runs on a crop around that person alone (the others painted over where their masks are known; small
people upscaled).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np
from tqdm.auto import tqdm

from magicpose.errors import InputError
from magicpose.poses.fill import DEFAULT_MAX_INTERPOLATION_GAP, fill_missing
from magicpose.poses.mediapipe_mapping import HolisticLandmarks, holistic_to_pose
from magicpose.poses.native_logs import quietly
from magicpose.poses.tracking import (
    Candidate,
    PedestrianFinder,
    PeopleTracker,
    PoseFinder,
    choose,
    colour_distance,
    colours,
    iou_matrix,
    parse_person,
    person_record,
    pose_box,
)
from magicpose.poses.types import Pose, PoseSequence

MODEL_COMPLEXITY = 1  # the only offline-capable setting, see the module docstring
SURVEY_STRIDE = 10  # frames between looks for a second person once someone has been seen
SMALL_PERSON_HEIGHT = 256  # crops of people smaller than this (pixels) are upscaled to it for Holistic


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

    @quietly
    def detect_image(self, rgb: np.ndarray) -> Pose | None:
        """The pose of the (main) person in one RGB uint8 image, or None if nobody is found."""
        rgb = _check_frame(rgb)
        if self._image_model is None:
            self._image_model = self._new_model(static_image_mode=True)
        return self._pose(self._image_model, rgb)

    @quietly
    def detect_frames(
        self, frames: Iterable[np.ndarray], *, progress: bool = False, total: int | None = None
    ) -> list[Pose | None]:
        """Per-frame poses of one video in tracking mode; None where nobody was found."""
        poses = []
        with self._new_model(static_image_mode=False) as model:  # fresh tracker per video
            for rgb in tqdm(frames, total=total, desc="poses", unit="frame", disable=not progress):
                poses.append(self._pose(model, _check_frame(rgb)))
        return poses

    def _frame_source(
        self,
        source: str | os.PathLike | Sequence[np.ndarray],
        fps: float | None,
        max_frames: int | None,
        start_frame: int = 0,
    ) -> tuple[Callable[[], Iterator[np.ndarray]], tuple[int, int], float, str, int | None]:
        """(a function yielding the frames anew, size, frame rate, name, frame count if known)."""
        from magicpose.media import VideoReader

        if isinstance(source, (str, os.PathLike)):
            with VideoReader(source) as reader:
                size, rate, count = (reader.width, reader.height), reader.fps, reader.frame_count
            count = None if count is None else max(count - start_frame, 0)
            total = count if max_frames is None or count is None else min(count, max_frames)
            stop = None if max_frames is None else start_frame + max_frames

            def frames() -> Iterator[np.ndarray]:
                with VideoReader(source) as reader:
                    yield from itertools.islice(reader, start_frame, stop)  # frames before the start: decoded only

            return frames, size, float(fps or rate), str(source), total
        listed = list(itertools.islice(source, start_frame, None if max_frames is None else start_frame + max_frames))
        if not listed:
            raise InputError("no frames to detect poses in")
        size = (listed[0].shape[1], listed[0].shape[0])
        return lambda: iter(listed), size, float(fps or 30.0), "the video", len(listed)

    def _survey(self, frames: Iterable[np.ndarray], height: int) -> tuple[str, int | None]:
        """("single" | "people" | "small" | "none", first frame with someone) from a look at every
        SURVEY_STRIDE-th frame (every frame until someone appears, and the frame after one with two)."""
        finder, pedestrians, first, pedestrians_only, crowded = PoseFinder(self.min_visibility), None, None, [], []
        try:
            for index, rgb in enumerate(frames):
                if first is not None and (index - first) % SURVEY_STRIDE and not crowded:
                    continue
                people = finder(_check_frame(rgb), limit=2)
                if len(people) >= 2:
                    crowded.append(index)
                    if len(crowded) == 2:  # twice in a row: a second person, not a stray detection
                        return "people", first
                    first = index if first is None else first
                    continue
                crowded = []
                if people:
                    first, pedestrians_only = index if first is None else first, []
                    continue
                if first is None:
                    pedestrians = pedestrians or PedestrianFinder(height)
                    pedestrians_only = pedestrians_only + [index] if pedestrians(rgb) else []
                    if len(pedestrians_only) == 3:  # three frames in a row: people too small for the pose model
                        return "small", pedestrians_only[0]
        finally:
            finder.close()
        return ("single", first) if first is not None else ("none", None)

    def _crop_pose(self, model, rgb: np.ndarray, person: Candidate, others: list[Candidate]) -> Pose | None:
        """Holistic on a crop around one person, the others painted over where their masks are known.

        Holistic's person must be the candidate: their boxes overlap and, where the finder gave a body
        pose, both wear the same colours; otherwise (Holistic latched onto someone else in the crop)
        the finder's own body pose is kept."""
        height, width = rgb.shape[:2]
        x0, y0, x1, y1 = person.box
        margin = 0.2 * max(x1 - x0, y1 - y0)
        left, top = max(0, int(x0 - margin)), max(0, int(y0 - margin))
        right, bottom = min(width, math.ceil(x1 + margin)), min(height, math.ceil(y1 + margin))
        if min(x1 - x0, y1 - y0) < 8:  # a box squeezed against the frame's edge: nobody to see
            return person.pose
        crop = rgb[top:bottom, left:right].copy()
        hide = np.zeros(crop.shape[:2], dtype=bool)
        for other in others:
            if other.mask is not None:
                hide |= other.mask[top:bottom, left:right]
        if person.mask is not None:
            hide &= ~person.mask[top:bottom, left:right]
        crop[hide] = np.median(crop.reshape(-1, 3), axis=0).astype(np.uint8)
        scale = max(1.0, SMALL_PERSON_HEIGHT / max(y1 - y0, 1.0))
        if scale > 1.0:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        pose = self._pose(model, np.ascontiguousarray(crop))
        if pose is None:
            return person.pose
        pose = pose.transformed(1.0 / scale, np.array([left, top], dtype=np.float64))
        box = pose_box(pose)
        same = box is not None and iou_matrix(box, person.box)[0, 0] > 0.3
        if same and person.pose is not None:
            same = colour_distance(colours(rgb, person.box, person.pose), colours(rgb, box, pose)) < 0.5
        return pose if same else person.pose

    @staticmethod
    def _same(rgb, pose: Pose | None, box: np.ndarray, colours_of_person: np.ndarray | None, limit: float) -> bool:
        """Whether a Holistic pose is the person at `box`: boxes overlap, colours within `limit`."""
        found = pose_box(pose)
        if found is None or iou_matrix(found, box)[0, 0] < 0.4:
            return False
        return colours_of_person is None or colour_distance(colours_of_person, colours(rgb, found, pose)) < limit

    def _follow(
        self, frames: Iterable[np.ndarray], mode: str, choice: str | int, size: tuple[int, int], fps: float, **bar
    ) -> tuple[list[Pose | None], dict]:
        """Per-frame poses of the chosen person (None where they are not seen) and the person record.

        With people big enough for the pose model, Holistic also tracks the whole frame as on the
        one-person path; where its person is the chosen one (same place, same colours) its pose is
        kept, the steadiest there is. Otherwise Holistic runs on a crop around the chosen person, and
        where the finder missed them, around where their track predicts them."""
        finder = PoseFinder(self.min_visibility) if mode == "people" else PedestrianFinder(size[1])
        tracker, chosen, first, first_count = PeopleTracker(fps), None, -1, 0
        poses, boxes = [], []
        whole = self._new_model(static_image_mode=False) if mode == "people" else None
        try:
            with self._new_model(static_image_mode=True) as model:
                for index, rgb in enumerate(tqdm(frames, desc="poses", unit="frame", **bar)):
                    rgb = _check_frame(rgb)
                    candidates = finder(rgb)
                    for candidate in candidates:
                        candidate.appearance = colours(rgb, candidate.box, candidate.pose)
                    ids = tracker.update(index, candidates)
                    if chosen is None and candidates:
                        chosen, first, first_count = ids[choose(candidates, choice, *size)], index, len(candidates)
                        tracker.keep.add(chosen)
                    full = self._pose(whole, rgb) if whole is not None else None
                    track = None if chosen is None else tracker.track(chosen)
                    pose = box = None
                    if chosen is not None and chosen in ids:
                        person = candidates[ids.index(chosen)]
                        if self._same(rgb, full, person.box, person.appearance, 0.5):
                            pose = full
                        else:
                            pose = self._crop_pose(model, rgb, person, [c for c in candidates if c is not person])
                        box = person.box
                    elif track is not None and index - track.last_frame <= tracker.hold:
                        # the finder missed them: where their track predicts them, in their colours
                        guess = np.clip(track.predict(index, tracker.hold), 0, np.tile(rgb.shape[1::-1], 2))
                        if not self._same(rgb, full, guess, track.appearance, 0.45):
                            full = self._crop_pose(model, rgb, Candidate(box=guess), candidates)
                        if self._same(rgb, full, guess, track.appearance, 0.45):
                            pose, box = full, pose_box(full)
                            tracker.confirm(chosen, Candidate(box=box, pose=pose, appearance=track.appearance), index)
                    poses.append(pose)
                    boxes.append(box)
        finally:
            finder.close()
            if whole is not None:
                whole.close()
        return poses, person_record(choice, mode, first, first_count, max(tracker.people_seen, first_count), boxes)

    @quietly
    def detect_video(
        self,
        source: str | os.PathLike | Sequence[np.ndarray],
        progress: bool = True,
        *,
        fps: float | None = None,
        max_frames: int | None = None,
        start_frame: int = 0,
        person: str | int = "largest",
    ) -> PoseSequence:
        """Poses of every frame (or the first `max_frames`, from frame `start_frame` on) of a video file,
        an image folder or a list of RGB frames; the rest of the video is not decoded.

        `person` ("largest", "center", or an index counted from the left) chooses who is followed, on
        the first frame where anyone appears; `sequence.person` records the choice and the followed
        person's box in every frame (see the module docstring). Frames where that person is not found
        are marked in `found` and filled (interpolated across short gaps, held across long ones). The
        source frame rate is kept; for a list of frames pass `fps` (default 30). A video with nobody
        in any frame is an InputError, and so is an index beyond the people of the first frame.
        """
        choice = parse_person(person)
        frames, size, rate, name, total = self._frame_source(source, fps, max_frames, start_frame)
        mode, first = self._survey(frames(), size[1])
        bar = {"total": total, "disable": not progress}
        if mode in ("people", "small"):
            poses, record = self._follow(frames(), mode, choice, size, rate, **bar)
        else:
            if isinstance(choice, int) and choice > 0 and mode == "single":
                raise InputError(
                    f"--person {choice} asks for person {choice}, but {name} shows one person "
                    f"(first seen on frame {first}); pass --person 0, largest or center"
                )
            poses = self.detect_frames(frames(), progress=progress, total=total)
            boxes = [pose_box(pose) for pose in poses]
            seen = [i for i, box in enumerate(boxes) if box is not None]
            record = person_record(choice, "single", seen[0] if seen else -1, 1, 1, boxes)
        if not poses:
            raise InputError(f"{name} contains no frames; pass a video with at least one frame")
        if all(pose is None for pose in poses):
            raise InputError(
                f"no person found in any of the {len(poses)} frames of {name}; pass a video showing a person"
            )
        filled, found = fill_missing(poses, self.max_interpolation_gap)
        # Decoded frames may be rotated upright from the container's size; trust the pixels.
        return PoseSequence(filled, size[0], size[1], rate, found, person=record)

    @quietly
    def close(self) -> None:
        if self._image_model is not None:
            self._image_model.close()
            self._image_model = None

    def __enter__(self) -> PoseDetector:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def detector_for_smoothing(level: str, **options) -> PoseDetector:
    """A detector for poses that `smooth_poses(..., level)` will smooth: our zero-lag smoothing replaces
    Holistic's own landmark filter, which lags, so that filter runs only when ours is off."""
    return PoseDetector(smooth=level == "off", **options)
