"""Read and write poses in the OpenPose JSON convention.

OpenPose writes one file per frame: `{"people": [{"pose_keypoints_2d": [x, y, c] * 18,
"hand_left_keypoints_2d": [x, y, c] * 21, "hand_right_keypoints_2d": ..., "face_keypoints_2d":
[x, y, c] * 70}]}` in pixels (COCO-18 body order; an empty list means the part is absent).
controlnet_aux adds `canvas_width` / `canvas_height`, which we read when present.

Our sequence file keeps a whole video in one JSON, each frame in that same per-person layout:

    {"format": "magicpose.poses", "version": 1, "fps": 30.0, "width": 512, "height": 768,
     "frames": [{"found": true, "people": [{"pose_keypoints_2d": [...], ...}]}, ...]}

`found` is false where the detector saw nobody and the pose was filled in (held or interpolated).
Sequences from a video detector also carry `"person"`, whom it followed (`magicpose.poses.tracking.
person_record`: how they were chosen, on which frame, among how many, and their box per frame, null
where unseen); files without it load with `person` None.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from magicpose.errors import InputError
from magicpose.files import atomic_path
from magicpose.poses.types import NUM_BODY, NUM_FACE, NUM_HAND, Pose, PoseSequence

SEQUENCE_FORMAT = "magicpose.poses"
SEQUENCE_VERSION = 1
DEFAULT_FPS = 30.0

# OpenPose key -> (Pose attribute, number of points)
PART_KEYS = {
    "pose_keypoints_2d": ("body", NUM_BODY),
    "hand_left_keypoints_2d": ("left_hand", NUM_HAND),
    "hand_right_keypoints_2d": ("right_hand", NUM_HAND),
    "face_keypoints_2d": ("face", NUM_FACE),
}


def pose_to_person(pose: Pose) -> dict:
    """One OpenPose `people[i]` entry; absent parts become empty lists, as OpenPose writes them.

    Values keep full float precision: rendering truncates pixels, so rounding could move a point.
    """
    person = {}
    for key, (attribute, _) in PART_KEYS.items():
        points = pose.part(attribute)
        person[key] = [float(v) for v in points.reshape(-1)] if (points[:, 2] > 0).any() else []
    return person


def person_to_pose(person: dict, where: str = "pose") -> Pose:
    """Parse one OpenPose `people[i]` entry. Missing keys and empty lists mean absent parts."""
    if not isinstance(person, dict):
        raise InputError(f"{where}: each entry of 'people' must be an object with OpenPose keypoint lists")
    parts = {}
    for key, (attribute, count) in PART_KEYS.items():
        values = person.get(key) or []
        try:
            points = np.asarray(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise InputError(f"{where}: {key} must be a flat list of numbers [x, y, confidence, ...]") from None
        if points.size == 0:
            parts[attribute] = None
            continue
        # The official face detector can emit a 71st (background) point; keep the 70 we model.
        if attribute == "face" and points.size == 71 * 3:
            points = points[: NUM_FACE * 3]
        if points.size != count * 3 or not np.isfinite(points).all():
            raise InputError(
                f"{where}: {key} must hold {count} finite (x, y, confidence) triples, got {points.size} numbers"
            )
        parts[attribute] = points.reshape(count, 3)
    return Pose(**parts)


def _person_size(pose: Pose) -> float:
    points = pose.present_points()
    if len(points) == 0:
        return 0.0
    extent = points.max(axis=0) - points.min(axis=0)
    return float(extent[0] * extent[1]) + len(points)  # bounding-box area, ties broken by point count


def main_person(people: Sequence[Pose]) -> Pose | None:
    """The person a single-person sequence follows: the one with the largest bounding box."""
    people = [pose for pose in people if len(pose.present_points())]
    return max(people, key=_person_size) if people else None


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise InputError(f"pose file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read {path} as JSON ({error}); pass a pose sequence or OpenPose JSON") from None


def _natural_key(path: Path):
    return [int(token) if token.isdigit() else token.lower() for token in re.split(r"(\d+)", path.name)]


def _canvas_size(data: dict) -> tuple[int, int] | None:
    if "canvas_width" in data and "canvas_height" in data:
        return int(data["canvas_width"]), int(data["canvas_height"])
    return None


def load_people(path: str | os.PathLike) -> tuple[list[Pose], tuple[int, int] | None]:
    """All people of one OpenPose per-frame JSON, and its canvas size if the file records one."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise InputError(f"{path} is not an OpenPose JSON file: it has no 'people' list")
    people = [person_to_pose(person, f"{path} people[{i}]") for i, person in enumerate(data["people"])]
    return people, _canvas_size(data)


def _load_sequence_file(path: Path, data: dict) -> PoseSequence:
    version = data.get("version")
    if version != SEQUENCE_VERSION:
        raise InputError(f"{path}: pose sequence version {version!r} is not supported (expected {SEQUENCE_VERSION})")
    frames, found = [], []
    try:
        width, height, fps = int(data["width"]), int(data["height"]), float(data["fps"])
        entries = list(data["frames"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: a pose sequence needs numeric width, height, fps and a frames list") from None
    for index, entry in enumerate(entries):
        pose = main_person([person_to_pose(p, f"{path} frame {index}") for p in entry.get("people", [])])
        frames.append(pose if pose is not None else Pose())
        found.append(bool(entry.get("found", pose is not None)))
    if not frames:
        raise InputError(f"{path} holds no frames")
    person = data.get("person")
    if person is not None:
        boxes = person.get("boxes") if isinstance(person, dict) else None
        if not isinstance(boxes, list) or len(boxes) != len(frames):
            raise InputError(f"{path}: 'person' must be an object whose 'boxes' list has one entry per frame")
    try:
        return PoseSequence(frames, width, height, fps, np.asarray(found), person=person)
    except ValueError as error:
        raise InputError(f"{path}: {error}") from None


def load_poses(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    infer_size: bool = False,
) -> PoseSequence:
    """Load a pose sequence from our sequence file, one OpenPose JSON, or a folder of them.

    Per-frame OpenPose files carry no fps and often no frame size: `size` (width, height) is then
    required (it is taken from `canvas_width`/`canvas_height` when the files have them) and `fps`
    defaults to 30. Frames with several people keep the largest one; frames with nobody are
    marked not found.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"), key=_natural_key)
        if not files:
            raise InputError(f"{path} holds no .json files; pass a folder of OpenPose per-frame JSON files")
    elif path.exists():
        data = _read_json(path)
        if isinstance(data, dict) and data.get("format") == SEQUENCE_FORMAT:
            sequence = _load_sequence_file(path, data)
            if fps is not None:
                sequence.fps = float(fps)
            return sequence
        files = [path]
    else:
        raise InputError(f"pose file not found: {path}")

    frames, found, canvas = [], [], None
    for file in files:
        people, file_canvas = load_people(file)
        canvas = canvas or file_canvas
        pose = main_person(people)
        frames.append(pose if pose is not None else Pose())
        found.append(pose is not None)
    size = size or canvas
    if size is None and infer_size:
        size = size_from_extent(frames, path)
    if size is None:
        raise InputError(
            f"{path} does not record the frame size (no canvas_width/canvas_height); pass it, e.g. --size 512x768"
        )
    return PoseSequence(frames, int(size[0]), int(size[1]), float(fps or DEFAULT_FPS), np.asarray(found))


def size_from_extent(frames: list[Pose], path) -> tuple[int, int] | None:
    """A canvas for OpenPose files that record none: the keypoints' extent plus a margin, rounded up to a
    multiple of 8, with a warning (the true frame may be larger). None for normalised (0..1) keypoints."""
    points = [pose.present_points() for pose in frames if len(pose.present_points())]
    if not points:
        return None
    extent = np.concatenate(points).max(axis=0)
    if extent.max() <= 1.0:
        raise InputError(
            f"{path} holds normalised keypoints (0..1) and no frame size; pass the video's size, "
            "e.g. --pose-size 720x1280"
        )
    width, height = (int(np.ceil(value * 1.05 / 8) * 8) for value in extent)
    warnings.warn(
        f"{path} does not record its frame size; assuming {width}x{height} from the keypoints' extent "
        "(pass --pose-size WxH, the driving video's size, if the skeleton sits wrongly)",
        stacklevel=3,
    )
    return width, height


def sequence_to_dict(sequence: PoseSequence) -> dict:
    """Our sequence-file layout as plain JSON data."""
    data = {
        "format": SEQUENCE_FORMAT,
        "version": SEQUENCE_VERSION,
        "fps": float(sequence.fps),
        "width": int(sequence.width),
        "height": int(sequence.height),
        "frames": [
            {"found": bool(found), "people": [pose_to_person(pose)] if len(pose.present_points()) else []}
            for pose, found in zip(sequence.frames, sequence.found)
        ],
    }
    if sequence.person is not None:
        data["person"] = sequence.person
    return data


def save_poses(sequence: PoseSequence, path: str | os.PathLike) -> None:
    """Write the sequence file atomically (the file appears whole or not at all)."""
    if not math.isfinite(sequence.fps):
        raise ValueError("fps must be finite")
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(sequence_to_dict(sequence), handle, separators=(",", ":"))
